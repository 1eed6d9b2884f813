"""structlog setup with a redaction step that every log line passes through.

Two ways in, one way out. structlog events (adsync's own) are rendered by structlog's
own chain and the finished line goes to the root logger's handlers (``_Sink``); stdlib
records (aiohttp, asyncio, warnings) go through the root handler's
``ProcessorFormatter``. Both chains format exceptions first, then redact, then render,
with the same processors. Redaction removes a password wherever it hides: under a
secret-looking key, as a ``Secret`` object, or as text inside any string (an f-string
message, a traceback, a nested dict) by matching every live ``Secret``.

Why adsync's own events skip the stdlib hop: the daemon logs a line per delivery, and
building two ``LogRecord``s, finding the caller's frame and formatting through the
handler cost more than the rest of that line (bench/README.md).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from adsync.secret import REDACTED, Secret, SecretIndex, live_secrets

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|pwd|secret|token|psk|private|credential|authorization|cookie"
    r"|api_?key|(^|_)key$|key_?material|master_?key|data_?key|wrapped_?key|hmac",
    re.IGNORECASE,
)
_RESERVED = frozenset({"event", "level", "logger", "timestamp", "exception", "stack"})


_SECRET_KEYS: dict[str, bool] = {}  # the verdict per key seen (a line's keys repeat)


def is_secret_key(key: str) -> bool:
    """True for keys whose value is redacted whatever it is (``password``, ``psk``, …)."""
    verdict = _SECRET_KEYS.get(key)
    if verdict is None:
        verdict = key not in _RESERVED and _SECRET_KEY.search(key) is not None
        if len(_SECRET_KEYS) >= 4096:  # keys made from data must not grow it without end
            _SECRET_KEYS.clear()
        _SECRET_KEYS[key] = verdict
    return verdict


def redact_text(text: str) -> str:
    """``text`` with every live secret (in any of its encoded forms) replaced by ``***``."""
    with live_secrets() as index:
        return index.redact(text)


def _scrub(value: Any, index: SecretIndex, depth: int = 0) -> Any:
    if isinstance(value, str):
        return index.redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Secret):
        return REDACTED
    if depth > 8:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {
            _scrub(str(k), index): (
                REDACTED
                if is_secret_key(str(k)) and not _harmless(v)
                else _scrub(v, index, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, index, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return _scrub(bytes(value).decode("utf-8", "replace"), index, depth + 1)
    # Anything else would be rendered through str()/repr(): render it here, then scan it.
    try:
        text = str(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return _scrub(text, index, depth + 1)


def _harmless(value: object) -> bool:
    return value is None or isinstance(value, bool)


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The redaction processor: runs after exception formatting, just before rendering."""
    out: EventDict = {}
    with live_secrets() as index:
        for key, value in event_dict.items():
            if is_secret_key(key) and not _harmless(value):
                out[key] = REDACTED
            else:
                out[key] = _scrub(value, index)
    return out


def _drop_color_message(_l: WrappedLogger, _m: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    """What a stdlib record gets before the common chain (level, logger, time, extras)."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
    ]


def _renderer(fmt: str) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(ensure_ascii=False)
    if fmt == "console":
        # plain_traceback: exceptions arrive already formatted (and redacted) as text;
        # no rich tracebacks, which would print local variables after redaction.
        return structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    raise ValueError(f"unknown log format {fmt!r} (json | console)")


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """The root handler's formatter: a line ``_Sink`` rendered already passes as it is."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, _RENDERED, False):
            return str(record.msg)
        return super().format(record)


_RENDERED = "adsync_rendered"


def make_formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter: exceptions become text, then ``redact``, then the renderer."""
    renderer = _renderer(fmt)
    return _Formatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )


def _event_chain(fmt: str) -> list[Processor]:
    """structlog's own chain for adsync's events: the formatter's steps, in its order.

    Redaction runs before the level, the logger's name and the time are added: adsync
    writes those itself, and scanning them would only cost time.
    """
    return [
        structlog.stdlib.filter_by_level,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.PositionalArgumentsFormatter(),
        _drop_color_message,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _renderer(fmt),
    ]


class _Sink:
    """Where structlog puts a rendered line: every handler of the root logger, as the
    stdlib would route a record, so one added after ``configure_logging`` (pytest's
    ``caplog``) sees it too.

    adsync's stream handler writes the line under its lock; any other handler gets a
    record that carries the line, which ``_Formatter`` passes through unchanged.
    """

    disabled = False  # read by structlog's filter_by_level

    def __init__(self, name: str) -> None:
        self.name = name
        self._stdlib = logging.getLogger(name)

    def isEnabledFor(self, level: int) -> bool:
        return self._stdlib.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:
        return self._stdlib.getEffectiveLevel()

    def debug(self, line: str) -> None:
        self._emit(logging.DEBUG, line)

    def info(self, line: str) -> None:
        self._emit(logging.INFO, line)

    def warning(self, line: str) -> None:
        self._emit(logging.WARNING, line)

    def error(self, line: str) -> None:
        self._emit(logging.ERROR, line)

    def critical(self, line: str) -> None:
        self._emit(logging.CRITICAL, line)

    warn = warning
    exception = error
    fatal = critical

    def _emit(self, level: int, line: str) -> None:
        handlers = logging.getLogger().handlers
        if not handlers and logging.lastResort is not None:  # as the stdlib does then
            handlers = [logging.lastResort]
        record: logging.LogRecord | None = None
        for handler in handlers:
            if level < handler.level:
                continue
            if type(handler) is _Handler and not handler.filters:
                handler.write_line(line)
                continue
            if record is None:
                record = logging.LogRecord(self.name, level, __file__, 0, line, None, None)
                setattr(record, _RENDERED, True)
            handler.handle(record)


_sinks: dict[str, _Sink] = {}


def _sink_for(*args: Any) -> _Sink:
    """structlog's logger factory: one sink per logger name."""
    name = str(args[0]) if args else "adsync"
    sink = _sinks.get(name)
    if sink is None:
        sink = _sinks[name] = _Sink(name)
    return sink


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler adsync installs (a reconfigure replaces it); writes ``_Sink``'s lines."""

    def write_line(self, line: str) -> None:
        """What ``emit`` does with a formatted record, for a line rendered already."""
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except Exception:
            record = logging.LogRecord("adsync", logging.ERROR, __file__, 0, "", None, None)
            self.handleError(record)
        finally:
            self.release()


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one redacting formatter on ``stream``
    (stderr by default). Calling it again (SIGHUP) replaces the previous setup."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (debug | info | warning | error)")
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)  # a foreign one would see stdlib records before redaction
        if isinstance(old, _Handler):
            old.close()
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    logging.captureWarnings(False)  # re-hook, in case something replaced showwarning since
    logging.captureWarnings(True)
    structlog.configure(
        processors=_event_chain(fmt),
        logger_factory=_sink_for,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


__all__ = [
    "LEVELS",
    "configure_logging",
    "is_secret_key",
    "make_formatter",
    "redact",
    "redact_text",
]
