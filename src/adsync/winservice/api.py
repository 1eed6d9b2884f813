"""The slice of pywin32 adsync uses, as typed protocols, and the one place it is imported."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, cast

SERVICE_NAME = "adsync"
DISPLAY_NAME = "adsync password synchronization"
DESCRIPTION = (
    "Receives Active Directory password changes from the adsync LSA filter and delivers "
    "them to the configured identity systems."
)

# winerror codes the CLI turns into plain sentences
ERROR_ACCESS_DENIED = 5
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073


class ServiceUtil(Protocol):
    """``win32serviceutil``."""

    ServiceFramework: type[Any]

    def InstallService(
        self, pythonClassString: str, serviceName: str, displayName: str, **kw: Any
    ) -> None: ...
    def RemoveService(self, serviceName: str) -> None: ...
    def StartService(self, serviceName: str, args: Any = None) -> None: ...
    def StopService(self, serviceName: str) -> Any: ...
    def WaitForServiceStatus(self, serviceName: str, status: int, waitSecs: int) -> None: ...
    def QueryServiceStatus(self, serviceName: str) -> tuple[int, ...]: ...


class ServiceConsts(Protocol):
    """``win32service`` (constants only)."""

    SERVICE_AUTO_START: int
    SERVICE_RUNNING: int
    SERVICE_STOPPED: int
    SERVICE_STOP_PENDING: int
    SERVICE_START_PENDING: int


class EventApi(Protocol):
    """``win32event``."""

    INFINITE: int

    def CreateEvent(self, sa: Any, manual: bool, initial: bool, name: Any) -> Any: ...
    def SetEvent(self, handle: Any) -> None: ...


class ServiceManager(Protocol):
    """``servicemanager``: the service host and the Event Log."""

    EVENTLOG_INFORMATION_TYPE: int
    PYS_SERVICE_STARTED: int
    PYS_SERVICE_STOPPED: int
    __file__: str

    def LogMsg(self, errorType: int, eventId: int, inserts: Any = None) -> None: ...
    def LogInfoMsg(self, msg: str) -> None: ...
    def LogWarningMsg(self, msg: str) -> None: ...
    def LogErrorMsg(self, msg: str) -> None: ...
    def Initialize(self, *args: Any) -> None: ...
    def PrepareToHostSingle(self, klass: Any = None) -> None: ...
    def StartServiceCtrlDispatcher(self) -> None: ...


class EventLogUtil(Protocol):
    """``win32evtlogutil``."""

    def AddSourceToRegistry(self, appName: str, msgDLL: str | None = None, **kw: Any) -> None: ...


class Win32Unavailable(RuntimeError):
    """pywin32 is not installed (or this is not Windows)."""


@dataclass(frozen=True)
class Win32:
    serviceutil: ServiceUtil
    service: ServiceConsts
    event: EventApi
    manager: ServiceManager
    evtlogutil: EventLogUtil


def load() -> Win32:
    """Import the pywin32 modules (fakes in ``sys.modules`` on Linux tests)."""
    try:
        mods = {
            name: importlib.import_module(name)
            for name in (
                "win32serviceutil",
                "win32service",
                "win32event",
                "servicemanager",
                "win32evtlogutil",
            )
        }
    except ImportError as exc:
        raise Win32Unavailable(
            f"the Windows service needs pywin32 ({exc.name} is missing); "
            "on Windows: pip install pywin32"
        ) from None
    return Win32(
        serviceutil=cast(ServiceUtil, mods["win32serviceutil"]),
        service=cast(ServiceConsts, mods["win32service"]),
        event=cast(EventApi, mods["win32event"]),
        manager=cast(ServiceManager, mods["servicemanager"]),
        evtlogutil=cast(EventLogUtil, mods["win32evtlogutil"]),
    )


def winerror(exc: BaseException) -> int | None:
    """The Windows error code of a ``pywintypes.error`` (its first argument), if any."""
    code = getattr(exc, "winerror", None)
    if isinstance(code, int):
        return code
    if exc.args and isinstance(exc.args[0], int):
        return int(exc.args[0])
    return None
