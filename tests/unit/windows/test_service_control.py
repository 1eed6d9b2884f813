"""`adsync service install|remove|start|stop` against fake pywin32 modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adsync.cli import main
from adsync.testing.daemon import base_config, idle_backend

from .conftest import SERVICE_AUTO_START, SERVICE_RUNNING, SERVICE_STOPPED, Scm, WinError


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "adsync.yaml"
    path.write_text(json.dumps(base_config(tmp_path, {"idle": idle_backend(tmp_path)})))
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["service", *args])
    return result.exit_code, result.output


def test_install_registers_the_host_command_line_and_the_event_source(
    scm: Scm, config_path: Path
) -> None:
    code, out = invoke("install", "--config", str(config_path))
    assert code == 0, out
    assert scm.names() == ["InstallService", "AddSourceToRegistry"]
    _, args, kw = scm.calls[0]
    assert args[1:] == ("adsync", "adsync password synchronization")
    assert kw["startType"] == SERVICE_AUTO_START
    assert kw["exeName"] == sys.executable
    assert kw["exeArgs"] == f'-m adsync.winservice --config "{config_path.resolve()}"'
    assert "Active Directory" in kw["description"]
    _, args, _ = scm.calls[1]
    assert args == ("adsync", r"C:\Python311\Lib\site-packages\win32\servicemanager.pyd")
    assert "installed service adsync" in out


def test_install_refuses_a_broken_config_before_touching_the_scm(scm: Scm, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("queue:\n  path: 5\n  nonsense: 1\n")
    code, _ = invoke("install", "--config", str(bad))
    assert code == 1
    assert scm.calls == []


@pytest.mark.parametrize(
    ("command", "failing", "code", "expected"),
    [
        ("install", "InstallService", 1073, "already installed"),
        ("install", "InstallService", 5, "elevated (Administrator) prompt"),
        ("start", "StartService", 1056, "already running"),
        ("start", "StartService", 1060, "not installed"),
        ("stop", "StopService", 1062, "is not running"),
        ("remove", "RemoveService", 1072, "marked for deletion"),
    ],
)
def test_scm_errors_become_plain_sentences(
    scm: Scm, config_path: Path, command: str, failing: str, code: int, expected: str
) -> None:
    scm.fail[failing] = WinError(code, failing, "raw text from Windows")
    args = [command, "--config", str(config_path)] if command == "install" else [command]
    exit_code, out = invoke(*args)
    assert exit_code == 1
    assert expected in out


def test_start_and_stop_wait_for_the_state(scm: Scm) -> None:
    assert invoke("start") == (0, "service adsync is running\n")
    assert invoke("stop") == (0, "service adsync stopped\n")
    waits = [c for c in scm.calls if c[0] == "WaitForServiceStatus"]
    assert [w[1][:2] for w in waits] == [("adsync", SERVICE_RUNNING), ("adsync", SERVICE_STOPPED)]


def test_a_service_that_does_not_start_in_time_points_at_the_event_log(scm: Scm) -> None:
    scm.fail["WaitForServiceStatus"] = WinError(0, "WaitForServiceStatus", "timeout")
    code, out = invoke("start")
    assert code == 1
    assert "did not start within 60s" in out and "Application event log" in out


def test_remove_stops_a_running_service_first(scm: Scm) -> None:
    assert invoke("remove")[0] == 0
    assert scm.names() == ["StopService", "WaitForServiceStatus", "RemoveService"]


def test_remove_of_a_stopped_service_just_removes_it(scm: Scm) -> None:
    scm.fail["StopService"] = WinError(1062, "StopService", "not started")
    assert invoke("remove") == (0, "removed service adsync\n")
    assert scm.names() == ["StopService", "RemoveService"]


def test_without_pywin32_the_command_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("win32serviceutil", "win32service", "servicemanager"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    monkeypatch.setattr(sys, "platform", "win32")  # on Linux the command manages systemd
    code, out = invoke("start")
    assert code == 1
    assert "needs pywin32" in out
