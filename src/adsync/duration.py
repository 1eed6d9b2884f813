"""Durations as operators write them: ``500ms``, ``10s``, ``5m``, ``1h``, ``7d``.

In the config file a duration always carries its unit: a bare ``30`` could mean seconds
or milliseconds, so it is refused with a hint (the JSON Schema says the same: a string
matching ``DURATION_REGEX``). Python code building a config model passes seconds as a
number; the loader marks file data with ``FILE_CONTEXT`` to tell the two apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# [0-9], not \d: the same digits for Python's re and an editor's ECMA-262 engine. Matched as
# the jsonschema library matches a "pattern", so the loader and the schema agree.
DURATION_REGEX = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$"
_PATTERN = re.compile(DURATION_REGEX)
_SHAPE = "must be a duration such as 500ms, 10s, 5m, 1h or 7d"
_BARE_NUMBER = "needs a unit, e.g. 10s or 500ms (a bare number could mean seconds or milliseconds)"

FILE_CONTEXT: Final[Mapping[str, bool]] = {"adsync_config_file": True}
"""Validation context of data read from a config file: durations must carry a unit."""


def parse_duration(value: object, *, bare_seconds: bool = True) -> float:
    """Seconds from a duration string; a number is seconds when ``bare_seconds``."""
    if isinstance(value, bool):
        raise ValueError(_SHAPE)
    if isinstance(value, int | float):
        if not bare_seconds:
            raise ValueError(_BARE_NUMBER)
        if not math.isfinite(value) or value < 0:
            raise ValueError("a duration must be a finite number of seconds, not negative")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.search(value)
        if match:
            return float(value[: match.start(2)]) * _UNITS[match.group(2)]
    raise ValueError(_SHAPE)


def validate_duration(value: object, info: ValidationInfo) -> float:
    """The ``Duration`` validator: numbers are refused in a config file's data."""
    from_file = bool(info.context and info.context.get("adsync_config_file"))
    return parse_duration(value, bare_seconds=not from_file)


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def is_duration_validator(metadata: Any) -> bool:
    """True for the validator that makes a field a ``Duration`` (for error wording)."""
    return isinstance(metadata, BeforeValidator) and metadata.func is validate_duration


Duration = Annotated[
    float,
    BeforeValidator(validate_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_REGEX}),
]
"""A duration field: seconds as float in Python, a string with its unit in YAML and JSON Schema."""
