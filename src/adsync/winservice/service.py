"""The ServiceFramework class, built on whatever pywin32 ``load`` returns.

pywin32's base class must exist when the class is created, so the class is
made by ``make_service_class(win32)`` instead of at import time: on Windows
with the real modules (``__main__``), in tests with fakes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from adsync.winservice.api import DESCRIPTION, DISPLAY_NAME, SERVICE_NAME, Win32
from adsync.winservice.eventlog import EventLogStream, as_text_stream
from adsync.winservice.runner import ServiceRunner


def make_service_class(win32: Win32, config_path: Path) -> type[Any]:
    """A ``win32serviceutil.ServiceFramework`` subclass running the daemon on ``config_path``."""
    base: type[Any] = win32.serviceutil.ServiceFramework

    class AdsyncService(base):  # type: ignore[misc]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self.runner = ServiceRunner(config_path)

        def SvcStop(self) -> None:
            """Called by the SCM on its own thread: report pending, then stop gracefully."""
            self.ReportServiceStatus(win32.service.SERVICE_STOP_PENDING)
            self.runner.request_stop()

        def SvcDoRun(self) -> None:
            manager = win32.manager
            manager.LogMsg(
                manager.EVENTLOG_INFORMATION_TYPE, manager.PYS_SERVICE_STARTED, (SERVICE_NAME, "")
            )
            # No console (the SCM gives a service none): stderr, where the log goes, is
            # the Event Log, a line per event. A debug run in a console logs there instead.
            if sys.stderr is None or not hasattr(sys.stderr, "fileno"):
                sys.stderr = as_text_stream(EventLogStream(manager))
            try:
                self.runner.run()
            except Exception as exc:  # the message is adsync's own: it never holds a secret
                manager.LogErrorMsg(
                    f"adsync service stopped on an error: {type(exc).__name__}: {exc}"
                )
                raise
            finally:
                manager.LogMsg(
                    manager.EVENTLOG_INFORMATION_TYPE,
                    manager.PYS_SERVICE_STOPPED,
                    (SERVICE_NAME, ""),
                )

    return AdsyncService
