"""The CLI as one tool: one --config option honoured everywhere (and $ADSYNC_CONFIG), the
README's commands parse as written, `config check|show`, plural forms, and `adsync status`
readable at 80 columns through a pipe."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from adsync.cli import main
from adsync.cli.common import CONFIG_HELP, default_config_path, plural
from adsync.cli.status import format_status
from adsync.config import config_from_data, load_config

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"

# Commands that read no config file (they say why in their help).
NO_CONFIG = {"demo", "config schema", "service remove", "service start", "service stop"}
# Samba runs these with the --config that `adsync samba setup` wrote into smb.conf and the
# hook scripts; they pass their arguments to adsync.hooks.main (standard library only, fast
# start), where --config is required: Samba's environment carries no ADSYNC_CONFIG.
PASS_THROUGH = {"hook samba-check", "hook samba-sync"}


def leaf_commands() -> Iterator[tuple[str, click.Command]]:
    def walk(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            path = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                yield from walk(command, path)
            else:
                yield path, command

    yield from walk(main, "")


def parse(args: list[str]) -> click.Context:
    """Resolve and parse a command line as the shell would run it, without running it."""
    ctx = main.make_context("adsync", list(args))
    while isinstance(ctx.command, click.Group):
        protected = getattr(ctx, "_protected_args", None)
        rest = [*(ctx.protected_args if protected is None else protected), *ctx.args]
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        assert name is not None and command is not None
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


# --- one --config ----------------------------------------------------------------------------


def test_every_command_that_reads_the_config_has_the_one_shared_option() -> None:
    seen = []
    for path, command in leaf_commands():
        options = [p for p in command.params if "--config" in getattr(p, "opts", ())]
        if path in PASS_THROUGH:
            continue
        if path in NO_CONFIG:
            assert options == [], f"{path} has --config but reads no config"
            continue
        assert len(options) == 1, f"`adsync {path}` has no --config"
        (option,) = options
        assert option.help == CONFIG_HELP, f"`adsync {path}` has its own --config"
        assert option.default is default_config_path, path
        seen.append(path)
    assert {"run", "status", "queue status", "keys check", "config show"} <= set(seen)


def test_adsync_config_env_is_the_default_and_config_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADSYNC_CONFIG", "/srv/from-env.yaml")
    for path, command in leaf_commands():
        if path in NO_CONFIG or path in PASS_THROUGH:
            continue
        args = path.split()
        for param in command.params:  # fill what the command requires (not --config)
            if isinstance(param, click.Argument) and param.required:
                args.append(str(README))  # an existing file, for the arguments that check
            elif isinstance(param, click.Option) and param.required:
                args += [param.opts[0], str(README)]  # an existing file
        assert parse(args).params["config_path"] == Path("/srv/from-env.yaml"), path
        given = parse([*args, "--config", "/etc/x.yaml"]).params["config_path"]
        assert given == Path("/etc/x.yaml"), path


def readme_commands() -> list[str]:
    """The shell lines of every ``sh`` block of the README, ``&&`` chains split."""
    text = README.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            lines += [part.strip() for part in line.split("&&") if part.strip()]
    return lines


def test_readme_commands_parse_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADSYNC_CONFIG", raising=False)
    env: dict[str, str] = {}
    parsed = []
    for line in readme_commands():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            name, _, value = words[1].partition("=")
            env[name] = value
            monkeypatch.setenv(name, value)
            continue
        if not words or Path(words[0]).name != "adsync":
            continue
        ctx = parse(words[1:])
        parsed.append(ctx.command_path.removeprefix("adsync "))
        if "config_path" not in ctx.params:
            assert parsed[-1] in NO_CONFIG, line
            continue
        expected = env.get("ADSYNC_CONFIG", "/etc/adsync/adsync.yaml")
        if "--config" in words:
            expected = words[words.index("--config") + 1]
        assert ctx.params["config_path"] == Path(expected), line
    assert env == {"ADSYNC_CONFIG": "/etc/adsync/adsync.yaml"}
    assert {"demo", "config check", "config show", "doctor", "status", "keys check"} <= set(parsed)


# --- config check / show ---------------------------------------------------------------------

HOOK_SECRET = "hook-secret-Ü9!"
FILE_SECRET = "file-secret-§4?"


# A config has at least one backend.
ONE_BACKEND = "backends:\n  hr: {type: webhook, url: 'https://127.0.0.1:9/', secret: 'env:HR'}\n"


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "crm.key").write_text(FILE_SECRET + "\n", encoding="utf-8")
    path = tmp_path / "adsync.yaml"
    path.write_text(
        "queue:\n  path: queue.db\n"
        "backends:\n"
        "  hr:\n    type: webhook\n    url: https://hr.example.com/pw\n"
        "    secret: env:KIT_HOOK_SECRET\n    timeout: 20s\n"
        "  crm:\n    type: webhook\n    url: https://crm.example.com/pw\n"
        "    secret: file:crm.key\n",
        encoding="utf-8",
    )
    return path


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_config_check_and_its_old_name(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    for args in (["config", "check"], ["check-config"]):
        result = CliRunner().invoke(main, [*args, "--config", str(path)])
        assert (result.exit_code, result.output) == (0, "OK: 2 backends (crm, hr)\n")
    one = tmp_path / "one.yaml"
    one.write_text("backends:\n  hr:\n    type: webhook\n    url: https://h/\n", encoding="utf-8")
    one.write_text(one.read_text() + "    secret: env:X\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(one)])
    assert result.output == "OK: 1 backend (hr)\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("logging:\n  level: loud\n" + ONE_BACKEND, encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 1 and f"1 problem in {bad}" in result.output


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_has_defaults_and_secret_references_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    monkeypatch.setenv("KIT_HOOK_SECRET", HOOK_SECRET)
    path = write_config(tmp_path)
    args = ["config", "show", "--config", str(path), *(["--json"] if as_json else [])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = result.output
    for secret in (HOOK_SECRET, FILE_SECRET):
        leaked = secret in out  # a bool: a failure prints the digest, not the value
        assert not leaked, f"a secret value (sha256 {digest(secret)}) is shown"
    data = json.loads(out) if as_json else YAML(typ="safe").load(out)
    hr, crm = data["backends"]["hr"], data["backends"]["crm"]
    assert hr["secret"] == "env:KIT_HOOK_SECRET"
    assert crm["secret"] == f"file:{tmp_path / 'crm.key'}"  # relative: made absolute
    assert hr["timeout"] == "20s" and crm["timeout"] == "10s"  # set, and the default
    assert hr["retry"]["expire_after"] == "7d" and hr["tls"]["verify"] is True
    assert data["queue"]["path"] == str(tmp_path / "queue.db")
    assert data["metrics"]["listen"] == "127.0.0.1:9617"
    # what it shows is a config: loading it gives the same effective config
    assert config_from_data(data) == load_config(path)


# --- plural forms ----------------------------------------------------------------------------


def test_plural() -> None:
    assert plural(1, "change") == "1 change"
    assert plural(2, "change") == "2 changes"
    assert plural(0, "change") == "0 changes"
    assert plural(1, "delivery", "deliveries") == "1 delivery"
    assert plural(3, "delivery", "deliveries") == "3 deliveries"


# --- adsync status at 80 columns, through a pipe ---------------------------------------------

BOX_OR_ANSI = re.compile(r"[\u2500-\u257f\x1b]")


def status_data() -> dict[str, Any]:
    def backend(name: str, **extra: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": name,
            "type": "oim_spml",
            "lane": "running",
            "configured": True,
            "in_flight": 0,
            "pending": 0,
            "counts": {"delivered": 1234567, "failed": 0},
            "oldest_pending_age": None,
        }
        return entry | extra

    return {
        "pid": 4242,
        "backends": [
            backend("hr"),
            backend(
                "identity-manager-production-west-europe",
                pending=1,
                oldest_pending_age=5400,
                misconfigured={"reason": "login: HTTP 401 (check credentials) " * 3, "at": 0},
                last_error={"at": 0, "outcome": "failed", "error": "login: HTTP 401"},
            ),
            backend("old", configured=False, pending=2, type=None),
            backend("crm", lane="start_failed"),
        ],
        "queue": {
            "path": "/var/lib/adsync/queue.db",
            "pending_deliveries": 1,
            "changes_holding_password": 1,
        },
        "ingest": {"connections_open": 1},
        "restart_needed": ["ingest.tcp"],
    }


def test_format_status_fits_80_columns_in_plain_text() -> None:
    text = format_status(status_data(), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert not BOX_OR_ANSI.search(text)
    header = next(line for line in lines if line.startswith("BACKEND"))
    assert header.split() == [
        "BACKEND",
        "TYPE",
        "STATE",
        "IN",
        "FLIGHT",
        "PENDING",
        "DELIVERED",
        "FAILED",
        "OLDEST",
    ]
    rows = {line.split()[0]: line.split() for line in lines[lines.index(header) + 1 :][:4]}
    assert rows["hr"][2] == "running" and rows["hr"][5] == "1234567"
    assert rows["old"][2] == "removed" and rows["crm"][2:5] == ["did", "not", "start"]
    cut = next(k for k in rows if k.startswith("ident"))
    assert cut.endswith("…") and rows[cut][2] == "misconfigured" and rows[cut][7] == "1.5h"
    unwrapped = " ".join(line.strip() for line in lines)  # notes wrap at 80
    assert "identity-manager-production-west-europe is misconfigured: login: HTTP 401" in unwrapped
    assert "1 delivery pending, 1 change still holding a password" in unwrapped


@pytest.fixture
def status_server() -> Iterator[int]:
    body = json.dumps(status_data()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_status_command_at_80_columns_through_a_pipe(tmp_path: Path, status_server: int) -> None:
    path = tmp_path / "adsync.yaml"
    path.write_text(f"metrics:\n  listen: 127.0.0.1:{status_server}\n" + ONE_BACKEND)
    result = CliRunner().invoke(main, ["status", "--config", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("adsync daemon pid 4242\n")
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
    assert not BOX_OR_ANSI.search(result.output)
    wide = CliRunner().invoke(main, ["status", "--config", str(path)], env={"COLUMNS": "200"})
    assert "identity-manager-production-west-europe " in wide.output  # room: not cut


def test_drain_wait_through_a_pipe_prints_plain_lines(tmp_path: Path) -> None:
    answers = iter([2, 1, 0])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = status_data()
            data["backends"] = [data["backends"][0] | {"pending": next(answers, 0)}]
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "adsync.yaml"
        path.write_text(f"metrics:\n  listen: 127.0.0.1:{server.server_address[1]}\n" + ONE_BACKEND)
        args = ["queue", "drain", "--wait", "--interval", "0.05", "--config", str(path)]
        result = CliRunner().invoke(main, args, env={"COLUMNS": "80"})
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["1 delivery pending", "0 deliveries pending"]
    assert lines[2].startswith("drained: 2 deliveries in ")
    assert not BOX_OR_ANSI.search(result.output)
