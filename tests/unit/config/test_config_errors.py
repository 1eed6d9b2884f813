"""Every class of config error names FILE:LINE: key.path, and never echoes a secret."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from adsync.config import ConfigError, ConfigProblem, load_config

WEBHOOK = """\
backends:
  hr:
    type: webhook
    url: https://hr.example.com/hook
    secret: env:HR_SECRET
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "adsync.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def only(path: Path) -> ConfigProblem:
    found = problems(path)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_message_format_is_file_line_key_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        WEBHOOK
        + """\
    retry:
      max_rejections: -1
""",
    )
    problem = only(path)
    assert str(problem) == (f"{path}:7: backends.hr.retry.max_rejections: must be at least 0")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "queue:\n  path: /x\n  max_pending: [1, 2\nlogging: {}\n")
    problem = only(path)
    assert problem.file == str(path)
    assert problem.line == 4
    assert problem.key == ""


def test_duplicate_key_is_an_error_without_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "logging:\n  level: info\n  level: debug-Secret-Value\n")
    problem = only(path)
    assert problem.line == 3
    assert "duplicate key 'level'" in problem.message
    assert "debug-Secret-Value" not in str(problem)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "queue:\n  path: q.db\nqeueu:\n  path: x\n")
    problem = only(path)
    assert (problem.line, problem.key) == (8, "qeueu")
    assert problem.message == "unknown key; did you mean `queue`?"


def test_unknown_nested_key_in_a_backend(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "    retry:\n      backof: {initial: 1s}\n")
    problem = only(path)
    assert (problem.line, problem.key) == (7, "backends.hr.retry.backof")


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "queue:\n  max_pending: many\n")
    problem = only(path)
    assert (problem.line, problem.key) == (7, "queue.max_pending")
    assert problem.message == "must be a whole number"


def test_bad_duration(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "precheck:\n  timeout: soon\n")
    problem = only(path)
    assert (problem.line, problem.key) == (7, "precheck.timeout")
    assert "duration" in problem.message


def test_bad_choice(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "logging:\n  level: info\n  format: xml\n")
    problem = only(path)
    assert (problem.line, problem.key) == (8, "logging.format")
    assert "'json'" in problem.message and "'console'" in problem.message


@pytest.mark.parametrize(
    "address", ["0.0.0.0:17635", "10.1.2.3:17635", "[::]:17635", "dc1.example.com:17635", "[::2]:1"]
)
def test_non_loopback_tcp_is_refused(tmp_path: Path, address: str) -> None:
    path = write(tmp_path, f"ingest:\n  allowed_uids: [0]\n  tcp: '{address}'\n" + WEBHOOK)
    problem = only(path)
    assert (problem.line, problem.key) == (3, "ingest.tcp")
    assert "loopback" in problem.message


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("127.0.0.1:17635", "127.0.0.1", 17635),
        ("127.8.9.10:1", "127.8.9.10", 1),
        ("[::1]:9617", "::1", 9617),
        ("localhost:0", "localhost", 0),
    ],
)
def test_loopback_addresses_are_accepted(
    tmp_path: Path, address: str, host: str, port: int
) -> None:
    path = write(
        tmp_path, f"ingest:\n  tcp: '{address}'\nmetrics:\n  listen: '{address}'\n" + WEBHOOK
    )
    config = load_config(path)
    assert config.ingest.tcp_address == (host, port)
    assert config.metrics.listen_address == (host, port)
    assert str(config.ingest.tcp) == address


def test_non_loopback_metrics_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "metrics:\n  listen: 192.168.1.1:9617\n" + WEBHOOK)
    problem = only(path)
    assert (problem.line, problem.key) == (2, "metrics.listen")


def test_unbracketed_ipv6_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "metrics:\n  listen: '::1:9617'\n" + WEBHOOK)
    assert "brackets" in only(path).message


def test_inline_secret_is_refused_and_not_repeated(tmp_path: Path) -> None:
    inline = "Tr0ub4dor&3-inline"
    path = write(tmp_path, WEBHOOK.replace("env:HR_SECRET", inline))
    problem = only(path)
    assert (problem.line, problem.key) == (5, "backends.hr.secret")
    assert "inline" in problem.message
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert inline not in str(info.value)
    assert inline not in repr(info.value.problems)


def test_inline_secret_that_looks_like_a_reference_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK.replace("env:HR_SECRET", "https:secretvalue"))
    problem = only(path)
    assert problem.key == "backends.hr.secret"
    assert "secretvalue" not in str(problem)


def test_unknown_plugin_type_lists_installed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "  other:\n    type: webhok\n    url: https://x/\n")
    problem = only(path)
    assert (problem.line, problem.key) == (7, "backends.other.type")
    assert "'webhok'" in problem.message
    assert "webhook" in problem.message.split("installed:")[1]


def test_missing_type(tmp_path: Path) -> None:
    path = write(tmp_path, "backends:\n  x:\n    url: https://x/\n")
    problem = only(path)
    assert (problem.line, problem.key) == (2, "backends.x.type")


def test_missing_required_plugin_key_points_at_the_backend(tmp_path: Path) -> None:
    path = write(tmp_path, "backends:\n  hr:\n    type: webhook\n    secret: env:X\n")
    problem = only(path)
    assert (problem.line, problem.key) == (2, "backends.hr.url")
    assert "required" in problem.message


def test_bad_backend_name(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK.replace("  hr:", "  'h r':"))
    problem = only(path)
    assert (problem.line, problem.key) == (2, "backends.h r")


def test_precheck_must_name_configured_backends(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        WEBHOOK
        + "    check_url: https://hr.example.com/check\n"
        + "precheck:\n  backends:\n    - hr\n    - soffid\n",
    )
    problem = only(path)
    assert (problem.line, problem.key) == (10, "precheck.backends[1]")
    assert "soffid" in problem.message


def test_samba_check_deadline_leaves_samba_a_margin(tmp_path: Path) -> None:
    path = write(tmp_path, "samba:\n  check_deadline: 9s\n" + WEBHOOK)
    problem = only(path)
    assert (problem.line, problem.key) == (2, "samba.check_deadline")
    assert problem.message == "must be at most 8s"


def test_both_transports_off_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ingest:\n  unix_socket: null\n  tcp: null\n" + WEBHOOK)
    problem = only(path)
    assert (problem.line, problem.key) == (1, "ingest")


def test_webhook_plain_http_only_to_loopback(tmp_path: Path) -> None:
    refused = write(tmp_path, WEBHOOK.replace("https://hr.example.com", "http://hr.example.com"))
    problem = only(refused)
    assert (problem.line, problem.key) == (4, "backends.hr.url")
    assert "loopback" in problem.message
    allowed = write(tmp_path, WEBHOOK.replace("https://hr.example.com", "http://127.0.0.1:8080"))
    assert load_config(allowed).backends["hr"].url == "http://127.0.0.1:8080/hook"  # type: ignore[attr-defined]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = (
        "ingest:\n  tcp: 0.0.0.0:1\nlogging:\n  level: loud\n"
        + WEBHOOK.replace("env:HR_SECRET", "plain")
        + "precheck:\n  backends: [nope]\n"
    )
    found = {(p.line, p.key) for p in problems(write(tmp_path, text))}
    assert found == {
        (2, "ingest.tcp"),
        (4, "logging.level"),
        (9, "backends.hr.secret"),
        (11, "precheck.backends[0]"),
    }


def test_empty_file_and_non_mapping(tmp_path: Path) -> None:
    assert "empty" in only(write(tmp_path, "# nothing\n")).message
    assert "mapping" in only(write(tmp_path, "- a\n- b\n")).message


def test_unreadable_file(tmp_path: Path) -> None:
    problem = only(tmp_path / "missing.yaml")
    assert problem.file.endswith("missing.yaml")
    assert "cannot read" in problem.message


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        WEBHOOK.replace("env:HR_SECRET", "file:secrets/hr.key")
        + "    tls:\n      ca_file: certs/ca.pem\n"
        + "queue:\n  path: state/queue.db\nkeys:\n  path: /abs/master.key\n",
    )
    config = load_config(path)
    hook = config.backends["hr"]
    assert hook.secret == f"file:{tmp_path / 'secrets/hr.key'}"  # type: ignore[attr-defined]
    assert hook.tls.ca_file == tmp_path / "certs/ca.pem"  # type: ignore[attr-defined]
    assert config.queue.path == tmp_path / "state/queue.db"
    assert config.keys.path == Path("/abs/master.key")


def test_secrets_are_not_resolved_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HR_SECRET", raising=False)
    config = load_config(write(tmp_path, WEBHOOK))
    assert config.backends["hr"].secret == "env:HR_SECRET"  # type: ignore[attr-defined]


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WEBHOOK))
    ingest = config.ingest
    assert ingest.unix_socket == Path("/run/adsync/filter.sock")
    assert ingest.allowed_uids == (0,)
    assert ingest.socket_group is None
    assert (ingest.max_connections, ingest.max_frame, ingest.max_field, ingest.max_password) == (
        64,
        65536,
        1024,
        1024,
    )
    assert (ingest.frame_timeout, ingest.idle_timeout, ingest.handshake_timeout) == (10, 300, 5)
    assert config.dispatch.shutdown_grace == 30
    assert (config.samba.initial_dump, config.samba.check_deadline) == ("skip", 3)
    assert (config.precheck.timeout, config.precheck.on_undecided) == (1.5, "accept")
    assert config.keys.provider == "file"
    assert list(config.backends) == ["hr"]


def test_precheck_backend_must_offer_a_check(tmp_path: Path) -> None:
    path = write(tmp_path, WEBHOOK + "precheck:\n  backends: [hr]\n")
    problem = only(path)
    assert (problem.line, problem.key) == (7, "precheck.backends[0]")
    assert "offers no policy check" in problem.message
    with_check = write(
        tmp_path,
        WEBHOOK + "    check_url: https://hr.example.com/check\nprecheck:\n  backends: [hr]\n",
    )
    assert load_config(with_check).precheck.backends == ("hr",)
