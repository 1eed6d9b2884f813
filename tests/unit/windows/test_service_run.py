"""The ServiceFramework class runs the real daemon; the Event Log handler; DPAPI via win32crypt."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

import pytest
import structlog

from adsync.ingest.client import IngestClient
from adsync.queue.errors import KeyProviderError
from adsync.queue.keys import CRYPTPROTECT_LOCAL_MACHINE, DPAPI_ENTROPY, DpapiKeyProvider
from adsync.secret import Secret
from adsync.startup import StartupFailure
from adsync.testing.daemon import base_config, idle_backend
from adsync.testing.leaks import REGISTRY
from adsync.winservice.api import load
from adsync.winservice.eventlog import EventLogStream, as_text_stream
from adsync.winservice.service import make_service_class

from .conftest import SERVICE_STOP_PENDING, FakeCrypt, Scm


@pytest.mark.usefixtures("restore_logging")
def test_the_service_runs_the_daemon_logs_to_the_event_log_and_stops_on_svcstop(
    scm: Scm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the SCM starts it: no console (``sys.stderr`` is None), so the log goes to the
    Event Log, each line once."""
    monkeypatch.setattr(sys, "stderr", None)
    REGISTRY.watch(tmp_path)
    config = base_config(
        tmp_path, {"idle": idle_backend(tmp_path)}, logging={"level": "info", "format": "json"}
    )
    config_path = tmp_path / "adsync.yaml"
    config_path.write_text(json.dumps(config))
    cls = make_service_class(load(), config_path)
    assert cls._svc_name_ == "adsync"
    svc = cls(["adsync"])
    failure: list[BaseException] = []

    def run() -> None:
        try:
            svc.SvcDoRun()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert svc.runner.started.wait(30), failure
        password = REGISTRY.password(f"Svc-{os.urandom(6).hex()}-Ä")
        with IngestClient.unix(Path(config["ingest"]["unix_socket"])) as client:
            ack = client.change(
                account="svcuser",
                password=Secret(password),
                changed_at_ms=1_700_000_000_000,
                event_id=os.urandom(16),
                domain="WIN",
            )
        assert int(ack.status) == 0
    finally:
        svc.SvcStop()  # what the SCM calls, from its own thread
        thread.join(60)
    assert not thread.is_alive() and failure == []
    assert scm.statuses == [SERVICE_STOP_PENDING]
    kinds = [kind for kind, _ in scm.events]
    assert kinds[0] == "msg" and "0x40000002" in scm.events[0][1]  # service started
    assert kinds[-1] == "msg" and "0x40000004" in scm.events[-1][1]  # service stopped
    texts = [text for _, text in scm.events]
    for event in ("service_running", "daemon_stopped"):
        assert len([t for t in texts if f'"event": "{event}"' in t]) == 1, event
    lines = [t for t in texts if t.startswith("{")]
    assert len(lines) == len(set(lines)) > 2  # every log line is one event, none twice
    assert not [t for t in texts if password in t]


@pytest.mark.usefixtures("restore_logging")
def test_a_daemon_that_cannot_start_reports_it_as_an_error_event(scm: Scm, tmp_path: Path) -> None:
    config = base_config(tmp_path, {"idle": idle_backend(tmp_path)})
    config_path = tmp_path / "adsync.yaml"
    config_path.write_text(json.dumps(config))
    (tmp_path / "queue.db").write_bytes(b"not a database, and long enough to be read" * 100)
    svc = make_service_class(load(), config_path)(["adsync"])
    with pytest.raises(StartupFailure) as info:  # the same one line as `adsync run`
        svc.SvcDoRun()
    assert info.value.exit_code == 2 and "file is not a database" in str(info.value)
    errors = [text for kind, text in scm.events if kind == "error"]
    assert f"adsync service stopped on an error: StartupFailure: {info.value}" in errors
    assert "0x40000004" in scm.events[-1][1]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_the_log_on_the_event_log_stream_maps_levels_and_is_redacted(scm: Scm, fmt: str) -> None:
    from adsync.observe.logs import configure_logging

    configure_logging("info", fmt, as_text_stream(EventLogStream(load().manager)))
    log = structlog.get_logger("adsync.test.eventlog")
    secret = Secret(REGISTRY.password(f"Evt-{os.urandom(6).hex()}"))
    log.info("hello", who="world")
    logging.getLogger("aiohttp.test").warning("careful")
    log.error("leaked?", note=f"it was {secret.reveal()}")
    assert [k for k, _ in scm.events] == ["info", "warning", "error"]
    assert "hello" in scm.events[0][1] and "careful" in scm.events[1][1]
    if fmt == "json":
        assert [json.loads(text)["event"] for _, text in scm.events] == [
            "hello",
            "careful",
            "leaked?",
        ]
    assert secret.reveal() not in scm.events[2][1] and "***" in scm.events[2][1]


def test_event_log_stream_splits_lines_and_reads_the_json_level(scm: Scm) -> None:
    stream = EventLogStream(load().manager)
    stream.write('{"event": "a", "level": "info"}\n{"event": "b", "level": "error"}\n{"ev')
    stream.write('ent": "c", "level": "warning"}\nplain text\n')
    stream.flush()
    assert [k for k, _ in scm.events] == ["info", "error", "warning", "info"]
    assert scm.events[2][1] == '{"event": "c", "level": "warning"}'


def test_host_main_hosts_the_service_class(scm: Scm, tmp_path: Path) -> None:
    from adsync.winservice.__main__ import main

    main(["--config", str(tmp_path / "adsync.yaml")])
    assert scm.names() == ["Initialize", "PrepareToHostSingle", "StartServiceCtrlDispatcher"]
    hosted = scm.calls[1][1][0]
    assert hosted._svc_name_ == "adsync"


def test_dpapi_provider_uses_win32crypt_with_machine_scope(
    win32crypt: FakeCrypt, tmp_path: Path
) -> None:
    provider = DpapiKeyProvider(tmp_path / "master.dpapi")
    key = provider.master_key(create=True)
    blob = (tmp_path / "master.dpapi").read_bytes()
    assert key not in blob and blob.startswith(b"DPAPI")
    assert (tmp_path / "master.dpapi").stat().st_mode & 0o077 == 0
    assert DpapiKeyProvider(tmp_path / "master.dpapi").master_key() == key
    assert [c[0] for c in win32crypt.calls] == ["protect", "unprotect"]
    for _, entropy, flags in win32crypt.calls:
        assert entropy == DPAPI_ENTROPY
        assert flags & CRYPTPROTECT_LOCAL_MACHINE  # machine scope: the service account can read it


def test_dpapi_blob_from_another_machine_is_a_clear_error(
    win32crypt: FakeCrypt, tmp_path: Path
) -> None:
    path = tmp_path / "master.dpapi"
    path.write_bytes(b"garbage from elsewhere")
    path.chmod(0o600)
    with pytest.raises(KeyProviderError, match="was it created on another machine"):
        DpapiKeyProvider(path).master_key()


def test_dpapi_master_rotation_stages_a_protected_key(
    win32crypt: FakeCrypt, tmp_path: Path
) -> None:
    provider = DpapiKeyProvider(tmp_path / "master.dpapi")
    old = provider.master_key(create=True)
    new = bytes(range(32))
    provider.stage(new)
    assert new not in (tmp_path / "master.dpapi.new").read_bytes()
    assert provider.staged_key() == new
    provider.commit_staged()
    assert provider.master_key() == new
    assert DpapiKeyProvider(tmp_path / "master.dpapi.old").master_key() == old
