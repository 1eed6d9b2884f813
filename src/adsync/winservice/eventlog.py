"""The service's stderr as the Windows Event Log (Application log, source "adsync").

The log's one handler writes lines already rendered by adsync's redacting chain to
stderr, so the Event Log sees exactly what a log file would: never a password. One
line is one event. (A second route, a logging handler beside the stream, wrote every
line twice; it is gone.)
"""

from __future__ import annotations

import json
import re
from typing import TextIO

from adsync.winservice.api import ServiceManager

MAX_MESSAGE = 31_000  # an event's strings are limited to 31,839 characters


# structlog's console renderer: "2026-12-03T06:22:32.686218Z [error    ] boom ..."
_CONSOLE_LEVEL = re.compile(r"\S+ \[(\w+) *\] ")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " …(truncated)"


class EventLogStream:
    """A text stream for ``sys.stderr`` in the service (which has no console).

    ``configure_logging`` (at start and at each config reload) installs its stream
    handler on ``sys.stderr``; pointing that at the Event Log sends the log there, and
    whatever else writes to stderr (a thread's traceback). Each line is one event; its
    level picks the event type: a JSON line's ``level``, a console line's ``[level]``.
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
        elif match := _CONSOLE_LEVEL.match(line):
            level = match.group(1)
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
