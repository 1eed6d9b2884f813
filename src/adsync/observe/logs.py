"""structlog setup with a redaction step that every log line passes through.

structlog events and stdlib records (aiohttp, asyncio, warnings) share one
``ProcessorFormatter`` on the root handler, whose chain formats exceptions first,
then redacts, then renders. Redaction removes a password wherever it hides: under
a secret-looking key, as a ``Secret`` object, or as text inside any string (an
f-string message, a traceback, a nested dict) by matching every live ``Secret``.
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


def is_secret_key(key: str) -> bool:
    """True for keys whose value is redacted whatever it is (``password``, ``psk``, …)."""
    return key not in _RESERVED and _SECRET_KEY.search(key) is not None


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
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
    ]


def make_formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter: exceptions become text, then ``redact``, then the renderer."""
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    elif fmt == "console":
        # plain_traceback: exceptions arrive already formatted (and redacted) as text;
        # no rich tracebacks, which would print local variables after redaction.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        raise ValueError(f"unknown log format {fmt!r} (json | console)")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )


KEEP_ATTRIBUTE = "adsync_keep_on_reconfigure"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler adsync installed, so a reconfigure replaces it."""


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one redacting formatter on ``stream``
    (stderr by default). Calling it again (SIGHUP) replaces the previous setup; a
    handler marked with ``KEEP_ATTRIBUTE`` (it uses ``make_formatter`` too) stays."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (debug | info | warning | error)")
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, KEEP_ATTRIBUTE, False):
            continue  # a handler that formats through redaction itself (the Event Log's)
        root.removeHandler(old)  # any other would see records before redaction
        if isinstance(old, _Handler):
            old.close()
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    logging.captureWarnings(False)  # re-hook, in case something replaced showwarning since
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
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
