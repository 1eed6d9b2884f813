"""Doctor checks that need a host this machine is not (a Samba DC with syncpasswords, a
Windows DC, a wrong clock, an unhealthy daemon): each ✗ with fakes at the boundary."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from adsync.config import config_from_data
from adsync.doctor import Context, Status, render_json, render_lines
from adsync.doctor.local import clock, daemon
from adsync.doctor.samba import samba
from adsync.doctor.windows import FILTER_KEY, LSA_KEY, filter_dll

WIRED = """[global]
\tserver role = active directory domain controller
\tcheck password script = /opt/adsync/bin/adsync hook samba-check --config /etc/adsync/adsync.yaml
\tpassword hash gpg key ids = 4A1B2C3D4E5F60718293A4B5C6D7E8F901234567
"""

# A config has at least one backend; an env: secret adds no file to check.
ONE_BACKEND = {"hr": {"type": "webhook", "url": "https://127.0.0.1:9/", "secret": "env:HR"}}


def ctx(tmp_path: Path, **fields: object) -> Context:
    config = config_from_data(
        {
            "backends": ONE_BACKEND,
            "ingest": {"tcp": "127.0.0.1:17635", "psk_file": "C:/ProgramData/adsync/filter.key"},
        }
    )
    return Context(config=config, config_path=tmp_path / "adsync.yaml", **fields)  # type: ignore[arg-type]


def fake_proc(tmp_path: Path, *cmdlines: list[str]) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()
    for pid, args in enumerate(cmdlines, start=100):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    return proc


def syncpasswords(script: Path) -> list[str]:
    return [
        "/usr/bin/python3",
        "/usr/bin/samba-tool",
        "user",
        "syncpasswords",
        f"--script={script}",
    ]


@pytest.fixture
def hook(tmp_path: Path) -> Path:
    script = tmp_path / "samba-sync-hook"
    script.write_text(
        "#!/bin/sh\nexec /opt/adsync/bin/adsync hook samba-sync --config /etc/adsync/adsync.yaml\n"
    )
    return script


def by_name(results: list) -> dict:  # type: ignore[type-arg]
    return {r.name: r for r in results}


# --- Samba ----------------------------------------------------------------------------------


def test_samba_wired_and_running(tmp_path: Path, hook: Path) -> None:
    conf = tmp_path / "smb.conf"
    conf.write_text(WIRED)
    results = samba(
        ctx(tmp_path, smb_conf=conf, windows=False, proc=fake_proc(tmp_path, syncpasswords(hook)))
    )
    assert [r.status for r in results] == [Status.OK] * 3
    assert by_name(results)["samba syncpasswords"].detail == f"running with {hook}"


def test_samba_check_script_not_wired(tmp_path: Path, hook: Path) -> None:
    conf = tmp_path / "smb.conf"
    conf.write_text(WIRED.replace("check password script", "# check password script"))
    result = by_name(
        samba(
            ctx(
                tmp_path,
                smb_conf=conf,
                windows=False,
                proc=fake_proc(tmp_path, syncpasswords(hook)),
            )
        )
    )["samba check password script"]
    assert result.status is Status.FAIL and "adsync samba setup" in result.fix


def test_samba_without_gpg_key_ids(tmp_path: Path, hook: Path) -> None:
    conf = tmp_path / "smb.conf"
    conf.write_text(WIRED.replace("password hash gpg key ids", "# x"))
    result = by_name(
        samba(
            ctx(
                tmp_path,
                smb_conf=conf,
                windows=False,
                proc=fake_proc(tmp_path, syncpasswords(hook)),
            )
        )
    )["samba gpg key ids"]
    assert result.status is Status.FAIL and "no cleartext" in result.detail


def test_syncpasswords_not_running(tmp_path: Path) -> None:
    conf = tmp_path / "smb.conf"
    conf.write_text(WIRED)
    result = by_name(
        samba(
            ctx(
                tmp_path,
                smb_conf=conf,
                windows=False,
                proc=fake_proc(tmp_path, ["/usr/sbin/samba"]),
            )
        )
    )["samba syncpasswords"]
    assert result.status is Status.FAIL and "not running" in result.detail


def test_syncpasswords_script_is_not_adsyncs(tmp_path: Path) -> None:
    conf = tmp_path / "smb.conf"
    conf.write_text(WIRED)
    other = tmp_path / "other-hook"
    other.write_text("#!/bin/sh\ncat > /dev/null\n")
    result = by_name(
        samba(
            ctx(
                tmp_path,
                smb_conf=conf,
                windows=False,
                proc=fake_proc(tmp_path, syncpasswords(other)),
            )
        )
    )["samba syncpasswords"]
    assert result.status is Status.FAIL and "does not run adsync hook samba-sync" in result.detail


def test_not_a_samba_dc_is_skipped(tmp_path: Path) -> None:
    results = samba(ctx(tmp_path, smb_conf=tmp_path / "absent.conf", windows=False))
    assert [r.status for r in results] == [Status.SKIP]


# --- Windows --------------------------------------------------------------------------------


class FakeRegistry:
    def __init__(self, values: dict[tuple[str, str], object]) -> None:
        self.values = values

    def get(self, key: str, value: str) -> object | None:
        return self.values.get((key, value))


@pytest.fixture
def windows_host(tmp_path: Path) -> tuple[Path, Path, FakeRegistry]:
    system_root = tmp_path / "Windows"
    (system_root / "System32").mkdir(parents=True)
    (system_root / "System32" / "adsyncflt.dll").write_bytes(b"MZ")
    program_data = tmp_path / "ProgramData"
    (program_data / "adsync").mkdir(parents=True)
    (program_data / "adsync" / "adsyncflt.log").write_text(
        "2026-12-01T08:00:00Z info initialized code=0 count=0\n"
    )
    registry = FakeRegistry(
        {
            (LSA_KEY, "Notification Packages"): ["scecli", "adsyncflt"],
            (FILTER_KEY, "Port"): 17635,
            (FILTER_KEY, "KeyFile"): r"C:\ProgramData\adsync\filter.key",
        }
    )
    return system_root, program_data, registry


def win(tmp_path: Path, host: tuple[Path, Path, FakeRegistry]) -> dict:  # type: ignore[type-arg]
    system_root, program_data, registry = host
    return by_name(
        filter_dll(
            ctx(
                tmp_path,
                windows=True,
                registry=registry,
                system_root=system_root,
                program_data=program_data,
            )
        )
    )


def test_windows_filter_healthy(
    tmp_path: Path, windows_host: tuple[Path, Path, FakeRegistry]
) -> None:
    results = win(tmp_path, windows_host)
    assert {n: r.status for n, r in results.items()} == {
        "filter registered": Status.OK,
        "filter DLL": Status.OK,
        "filter settings": Status.OK,
        "filter loaded": Status.OK,
    }


def test_windows_filter_not_registered(
    tmp_path: Path, windows_host: tuple[Path, Path, FakeRegistry]
) -> None:
    windows_host[2].values[(LSA_KEY, "Notification Packages")] = ["scecli"]
    result = win(tmp_path, windows_host)["filter registered"]
    assert result.status is Status.FAIL and "install.ps1" in result.fix


def test_windows_dll_missing(tmp_path: Path, windows_host: tuple[Path, Path, FakeRegistry]) -> None:
    (windows_host[0] / "System32" / "adsyncflt.dll").unlink()
    assert win(tmp_path, windows_host)["filter DLL"].status is Status.FAIL


def test_windows_settings_do_not_match(
    tmp_path: Path, windows_host: tuple[Path, Path, FakeRegistry]
) -> None:
    windows_host[2].values[(FILTER_KEY, "Port")] = 17000
    result = win(tmp_path, windows_host)["filter settings"]
    assert (
        result.status is Status.FAIL
        and "Port is 17000, the daemon listens on 17635" in result.detail
    )


def test_windows_filter_never_loaded(
    tmp_path: Path, windows_host: tuple[Path, Path, FakeRegistry]
) -> None:
    (windows_host[1] / "adsync" / "adsyncflt.log").write_text("")
    result = win(tmp_path, windows_host)["filter loaded"]
    assert result.status is Status.FAIL and "reboot" in result.fix


def test_windows_checks_do_not_run_on_linux(tmp_path: Path) -> None:
    assert filter_dll(ctx(tmp_path, windows=False)) == []


# --- clock, daemon health, rendering -------------------------------------------------------


def test_clock_never_set(tmp_path: Path) -> None:
    (result,) = clock(ctx(tmp_path, now=lambda: 978_307_200.0))  # 2001-01-01
    assert result.status is Status.FAIL and "never set" in result.detail


def test_clock_differs_from_a_target(tmp_path: Path) -> None:
    c = ctx(tmp_path, now=lambda: 1_800_000_000.0)
    c.skews.append(("idp", 900.0))
    (result,) = clock(c)
    assert result.status is Status.FAIL and "idp's clock differs by +900 s" in result.detail


@pytest.fixture
def unhealthy_daemon() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "unhealthy", "reasons": ["queue not writable: disk full"]})
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_daemon_unhealthy(tmp_path: Path, unhealthy_daemon: int) -> None:
    config = config_from_data(
        {"backends": ONE_BACKEND, "metrics": {"listen": f"127.0.0.1:{unhealthy_daemon}"}}
    )
    (result,) = daemon(Context(config=config, config_path=tmp_path / "a.yaml"))
    assert (
        result.status is Status.FAIL and result.detail == "unhealthy: queue not writable: disk full"
    )


def test_render_marks_fix_and_summary(tmp_path: Path) -> None:
    results = clock(ctx(tmp_path, now=lambda: 0.0))
    lines = render_lines(results)
    assert lines[0].startswith("✗ clock: ") and " — fix: enable time synchronisation" in lines[0]
    assert lines[-1] == "1 check failed"
    assert render_json(results)["ok"] is False


# --- secrets, files, queue, daemon socket: the variants the integration rig does not build --


def local_ctx(tmp_path: Path, data: dict) -> Context:  # type: ignore[type-arg]
    return Context(config=config_from_data(data), config_path=tmp_path / "adsync.yaml")


def test_env_secret_not_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adsync.doctor.local import secrets

    monkeypatch.delenv("ADSYNC_DOCTOR_UNSET", raising=False)
    data = {
        "backends": {
            "idp": {
                "type": "scim",
                "url": "https://idp.test/scim",
                "token": "env:ADSYNC_DOCTOR_UNSET",
            }
        },
        "queue": {"path": str(tmp_path / "q.db")},
        "keys": {"provider": "env", "env": "ADSYNC_DOCTOR_KEY_UNSET"},
        "ingest": {"tcp": None},
    }
    monkeypatch.delenv("ADSYNC_DOCTOR_KEY_UNSET", raising=False)
    results = by_name(secrets(local_ctx(tmp_path, data)))
    token = results["secret backends.idp.token"]
    assert token.status is Status.FAIL and "service's environment" in token.fix
    key = results["secret keys (env)"]
    assert key.status is Status.FAIL and key.detail == "ADSYNC_DOCTOR_KEY_UNSET is not set"


def test_queue_file_open_to_others(tmp_path: Path) -> None:
    from adsync.doctor.local import files

    (tmp_path / "adsync.yaml").write_text(json.dumps({"backends": ONE_BACKEND}))
    queue = tmp_path / "q.db"
    queue.write_bytes(b"")
    queue.chmod(0o644)
    tmp_path.chmod(0o700)
    data = {
        "backends": ONE_BACKEND,
        "queue": {"path": str(queue)},
        "keys": {"path": str(tmp_path / "k")},
        "ingest": {"tcp": None},
    }
    results = by_name(files(local_ctx(tmp_path, data)))
    result = results[f"queue file q.db {queue}"]
    assert result.status is Status.FAIL and result.fix == f"chmod 0600 {queue}"


def test_queue_that_is_not_a_database(tmp_path: Path) -> None:
    from adsync.doctor.local import queue as queue_check

    queue = tmp_path / "q.db"
    queue.write_bytes(b"this is not SQLite" * 100)
    key = tmp_path / "master.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    data = {"backends": ONE_BACKEND, "queue": {"path": str(queue)}, "keys": {"path": str(key)}}
    (result,) = queue_check(local_ctx(tmp_path, data))
    assert result.status is Status.FAIL and "does not open read-only" in result.detail


def test_daemon_socket_not_accepting(tmp_path: Path) -> None:
    data = {
        "backends": ONE_BACKEND,
        "metrics": {"listen": None},
        "ingest": {"unix_socket": str(tmp_path / "none.sock")},
    }
    (result,) = daemon(local_ctx(tmp_path, data))
    assert result.status is Status.FAIL and result.detail.startswith("nothing accepts on")
    assert "journalctl -u adsync" in result.fix
