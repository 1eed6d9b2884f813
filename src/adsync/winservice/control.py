"""Install, remove, start and stop the service through the service control manager."""

from __future__ import annotations

import sys
from pathlib import Path

from adsync.winservice.api import (
    DESCRIPTION,
    DISPLAY_NAME,
    ERROR_ACCESS_DENIED,
    ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_DOES_NOT_EXIST,
    ERROR_SERVICE_EXISTS,
    ERROR_SERVICE_MARKED_FOR_DELETE,
    ERROR_SERVICE_NOT_ACTIVE,
    SERVICE_NAME,
    Win32,
    winerror,
)

WAIT_SECONDS = 60


class ServiceError(RuntimeError):
    """A service operation failed; the message says why in plain words."""


_MESSAGES = {
    ERROR_ACCESS_DENIED: "access denied: run this from an elevated (Administrator) prompt",
    ERROR_SERVICE_EXISTS: f"the {SERVICE_NAME} service is already installed",
    ERROR_SERVICE_DOES_NOT_EXIST: f"the {SERVICE_NAME} service is not installed",
    ERROR_SERVICE_ALREADY_RUNNING: f"the {SERVICE_NAME} service is already running",
    ERROR_SERVICE_NOT_ACTIVE: f"the {SERVICE_NAME} service is not running",
    ERROR_SERVICE_MARKED_FOR_DELETE: (
        f"the {SERVICE_NAME} service is marked for deletion: close the Services console "
        "(services.msc) and try again"
    ),
}


def _explain(action: str, exc: Exception) -> ServiceError:
    code = winerror(exc)
    text = _MESSAGES.get(code) if code is not None else None
    return ServiceError(f"cannot {action}: {text or f'{type(exc).__name__}: {exc}'}")


def host_args(config_path: Path) -> str:
    """The command line the SCM runs after the executable (quoted for spaces)."""
    return f'-m adsync.winservice --config "{config_path}"'


def install(win32: Win32, config_path: Path, *, python: str | None = None) -> None:
    """Register the service (automatic start, LocalSystem) and its Event Log source."""
    config_path = config_path.resolve()
    try:
        win32.serviceutil.InstallService(
            "adsync.winservice.service.AdsyncService",  # unused: the host is ``exeName``
            SERVICE_NAME,
            DISPLAY_NAME,
            startType=win32.service.SERVICE_AUTO_START,
            exeName=python or sys.executable,
            exeArgs=host_args(config_path),
            description=DESCRIPTION,
        )
    except Exception as exc:
        raise _explain("install the service", exc) from None
    try:  # events then show their text instead of "description not found"
        win32.evtlogutil.AddSourceToRegistry(SERVICE_NAME, win32.manager.__file__)
    except Exception as exc:
        raise _explain("register the Event Log source", exc) from None


def remove(win32: Win32) -> None:
    """Stop the service if it runs, then delete it."""
    try:
        win32.serviceutil.StopService(SERVICE_NAME)
    except Exception as exc:
        if winerror(exc) not in (ERROR_SERVICE_NOT_ACTIVE,):
            raise _explain("stop the service before removing it", exc) from None
    else:
        _wait(win32, win32.service.SERVICE_STOPPED, "stop")
    try:
        win32.serviceutil.RemoveService(SERVICE_NAME)
    except Exception as exc:
        raise _explain("remove the service", exc) from None


def start(win32: Win32, wait: int = WAIT_SECONDS) -> None:
    try:
        win32.serviceutil.StartService(SERVICE_NAME)
    except Exception as exc:
        raise _explain("start the service", exc) from None
    _wait(win32, win32.service.SERVICE_RUNNING, "start", wait)


def stop(win32: Win32, wait: int = WAIT_SECONDS) -> None:
    try:
        win32.serviceutil.StopService(SERVICE_NAME)
    except Exception as exc:
        raise _explain("stop the service", exc) from None
    _wait(win32, win32.service.SERVICE_STOPPED, "stop", wait)


def _wait(win32: Win32, status: int, action: str, wait: int = WAIT_SECONDS) -> None:
    try:
        win32.serviceutil.WaitForServiceStatus(SERVICE_NAME, status, wait)
    except Exception as exc:
        raise ServiceError(
            f"the service did not {action} within {wait}s ({type(exc).__name__}); "
            "see the Application event log, source adsync"
        ) from None
