"""Fake pywin32 modules, put into ``sys.modules`` at the boundary adsync imports them from.

They follow pywin32's call signatures and its error type (``pywintypes.error``
carries ``winerror, funcname, strerror``); they record calls instead of
talking to the service control manager, the Event Log or DPAPI.
"""

from __future__ import annotations

import hashlib
import logging
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

SERVICE_AUTO_START = 2
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4


class WinError(Exception):
    """Like ``pywintypes.error``: args are (winerror, funcname, strerror)."""

    def __init__(self, code: int, func: str, text: str) -> None:
        super().__init__(code, func, text)
        self.winerror = code
        self.funcname = func
        self.strerror = text


@dataclass
class Scm:
    """What the fakes record, and the errors they are told to raise."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    fail: dict[str, WinError] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    statuses: list[int] = field(default_factory=list)

    def call(self, name: str, *args: Any, **kw: Any) -> None:
        self.calls.append((name, args, kw))
        if name in self.fail:
            raise self.fail.pop(name)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def _fake_modules(scm: Scm) -> dict[str, types.ModuleType]:
    serviceutil = types.ModuleType("win32serviceutil")

    class ServiceFramework:
        def __init__(self, args: Any) -> None:
            self.args = args

        def ReportServiceStatus(self, status: int, *rest: Any) -> None:
            scm.statuses.append(status)

    serviceutil.ServiceFramework = ServiceFramework  # type: ignore[attr-defined]
    for name in ("InstallService", "RemoveService", "StartService", "StopService"):
        setattr(serviceutil, name, lambda *a, _n=name, **k: scm.call(_n, *a, **k))
    serviceutil.WaitForServiceStatus = (  # type: ignore[attr-defined]
        lambda *a, **k: scm.call("WaitForServiceStatus", *a, **k)
    )

    service = types.ModuleType("win32service")
    service.SERVICE_AUTO_START = SERVICE_AUTO_START  # type: ignore[attr-defined]
    service.SERVICE_RUNNING = SERVICE_RUNNING  # type: ignore[attr-defined]
    service.SERVICE_STOPPED = SERVICE_STOPPED  # type: ignore[attr-defined]
    service.SERVICE_STOP_PENDING = SERVICE_STOP_PENDING  # type: ignore[attr-defined]
    service.SERVICE_START_PENDING = SERVICE_START_PENDING  # type: ignore[attr-defined]

    event = types.ModuleType("win32event")
    event.INFINITE = 0xFFFFFFFF  # type: ignore[attr-defined]
    event.CreateEvent = lambda *a: object()  # type: ignore[attr-defined]
    event.SetEvent = lambda h: None  # type: ignore[attr-defined]

    manager = types.ModuleType("servicemanager")
    manager.__file__ = r"C:\Python311\Lib\site-packages\win32\servicemanager.pyd"
    manager.EVENTLOG_INFORMATION_TYPE = 4  # type: ignore[attr-defined]
    manager.PYS_SERVICE_STARTED = 0x40000002  # type: ignore[attr-defined]
    manager.PYS_SERVICE_STOPPED = 0x40000004  # type: ignore[attr-defined]
    manager.LogMsg = lambda t, i, s=None: scm.events.append(  # type: ignore[attr-defined]
        ("msg", f"{i:#x} {s}")
    )
    manager.LogInfoMsg = lambda m: scm.events.append(("info", m))  # type: ignore[attr-defined]
    manager.LogWarningMsg = lambda m: scm.events.append(("warning", m))  # type: ignore[attr-defined]
    manager.LogErrorMsg = lambda m: scm.events.append(("error", m))  # type: ignore[attr-defined]
    for name in ("Initialize", "PrepareToHostSingle", "StartServiceCtrlDispatcher"):
        setattr(manager, name, lambda *a, _n=name: scm.call(_n, *a))

    evtlogutil = types.ModuleType("win32evtlogutil")
    evtlogutil.AddSourceToRegistry = (  # type: ignore[attr-defined]
        lambda *a, **k: scm.call("AddSourceToRegistry", *a, **k)
    )
    return {
        "win32serviceutil": serviceutil,
        "win32service": service,
        "win32event": event,
        "servicemanager": manager,
        "win32evtlogutil": evtlogutil,
    }


@pytest.fixture
def scm(monkeypatch: pytest.MonkeyPatch) -> Scm:
    """The fake pywin32 service modules, in ``sys.modules`` for this test only."""
    recorder = Scm()
    for name, module in _fake_modules(recorder).items():
        monkeypatch.setitem(__import__("sys").modules, name, module)
    return recorder


class FakeCrypt:
    """``win32crypt`` with a reversible stand-in for DPAPI that checks the arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, int]] = []

    def _pad(self, entropy: bytes, n: int) -> bytes:
        return hashlib.shake_256(b"this machine|" + entropy).digest(n)

    def CryptProtectData(
        self, data: bytes, desc: str, entropy: bytes, reserved: Any, prompt: Any, flags: int
    ) -> bytes:
        self.calls.append(("protect", entropy, flags))
        pad = self._pad(entropy, len(data))
        return b"DPAPI" + bytes(a ^ b for a, b in zip(data, pad, strict=True))

    def CryptUnprotectData(
        self, blob: bytes, entropy: bytes, reserved: Any, prompt: Any, flags: int
    ) -> tuple[str, bytes]:
        self.calls.append(("unprotect", entropy, flags))
        if not blob.startswith(b"DPAPI"):
            raise WinError(13, "CryptUnprotectData", "The data is invalid.")
        body = blob[5:]
        return "adsync master key", bytes(
            a ^ b for a, b in zip(body, self._pad(entropy, len(body)), strict=True)
        )


@pytest.fixture
def win32crypt(monkeypatch: pytest.MonkeyPatch) -> FakeCrypt:
    fake = FakeCrypt()
    module = types.ModuleType("win32crypt")
    module.CryptProtectData = fake.CryptProtectData  # type: ignore[attr-defined]
    module.CryptUnprotectData = fake.CryptUnprotectData  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "win32crypt", module)
    return fake


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The service configures process-wide logging: put it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    structlog.configure(**config)
