"""Log records to the Windows Event Log (Application log, source "adsync").

The handler gets records already formatted by adsync's redacting formatter, so
the Event Log sees exactly what a log file would: never a password.
"""

from __future__ import annotations

import json
import logging
from typing import TextIO

from adsync.winservice.api import ServiceManager

MAX_MESSAGE = 31_000  # an event's strings are limited to 31,839 characters


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " …(truncated)"


class EventLogHandler(logging.Handler):
    """ERROR and above → error events, WARNING → warning events, the rest → information."""

    # It formats through adsync's redacting formatter, so a reload keeps it.
    adsync_keep_on_reconfigure = True

    def __init__(self, manager: ServiceManager, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._manager = manager

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = _clip(self.format(record))
            if record.levelno >= logging.ERROR:
                self._manager.LogErrorMsg(text)
            elif record.levelno >= logging.WARNING:
                self._manager.LogWarningMsg(text)
            else:
                self._manager.LogInfoMsg(text)
        except Exception:
            self.handleError(record)


class EventLogStream:
    """A text stream for ``sys.stderr`` in the service (which has no console).

    ``configure_logging`` (at a config reload) installs a fresh stream handler on
    ``sys.stderr``; pointing that at the Event Log keeps the log flowing there.
    Each line is one event; a JSON line's ``level`` picks the event type.
    """

    def __init__(self, manager: ServiceManager) -> None:
        self._manager = manager
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if line.strip():
                self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        level = ""
        if line.startswith("{"):
            try:
                level = str(json.loads(line).get("level", ""))
            except ValueError:
                level = ""
        text = _clip(line)
        if level in ("error", "critical", "exception"):
            self._manager.LogErrorMsg(text)
        elif level == "warning":
            self._manager.LogWarningMsg(text)
        else:
            self._manager.LogInfoMsg(text)

    def flush(self) -> None:
        if self._partial.strip():
            self._emit(self._partial)
        self._partial = ""

    def isatty(self) -> bool:
        return False


def as_text_stream(stream: EventLogStream) -> TextIO:
    """``EventLogStream`` duck-types the part of ``TextIO`` that logging uses."""
    from typing import cast

    return cast(TextIO, stream)
