"""Pydantic's validation errors in an operator's words: one table for every error.

An administrator edits YAML, not Python: "a list", not "a valid tuple"; "a whole number",
not "a valid integer"; "true or false", not "a valid boolean"; and a misspelt key gets
"did you mean `concurrency`?". The words come from the error's type and its context (the
bound, the pattern, the choices), never from the input: an error never repeats the value
it refuses (it may be a password typed into the wrong place).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from adsync.duration import format_duration, is_duration_validator

_MAPPING = "must be a mapping (indented `key: value` lines)"
_WORDS: Mapping[str, str] = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a smaller whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "string_unicode": "must be text",
    "bytes_type": "must be text",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "frozen_set_type": "must be a list",
    "iterable_type": "must be a list",
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "dataclass_type": _MAPPING,
    "path_type": "must be a file path",
    "none_required": "must be null",
    "missing": "required key missing",
    "url_type": "must be a URL such as https://host/path",
    "url_parsing": "must be a URL such as https://host/path",
    "url_syntax_violation": "must be a URL such as https://host/path",
}

# Bounds: the error type, its context key, the words before the bound.
_BOUNDS: Mapping[str, tuple[str, str]] = {
    "greater_than": ("gt", "must be more than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
    "multiple_of": ("multiple_of", "must be a multiple of"),
}
_CUSTOM = ("value_error", "assertion_error")  # our validators' own words, prefix dropped
_CUSTOM_PREFIXES = ("Value error, ", "Assertion failed, ")


def operator_message(err: ErrorDetails, root: type[BaseModel]) -> str:
    """The message for one pydantic error of a file validated by ``root``."""
    kind, ctx, loc = err["type"], err.get("ctx") or {}, err["loc"]
    if kind == "extra_forbidden":
        return _unknown_key(root, loc)
    if kind in _CUSTOM:
        message = err["msg"]
        for prefix in _CUSTOM_PREFIXES:
            message = message.removeprefix(prefix)
        return message
    if kind in _WORDS:
        return _WORDS[kind]
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        is_duration = _is_duration(_metadata_at(root, loc))
        return f"{words} {_number(ctx.get(key), duration=is_duration)}"
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        return f"must be one of {expected}" if ", " in expected else f"must be {expected}"
    if kind in ("string_too_short", "string_too_long", "too_short", "too_long"):
        return _length(kind, ctx)
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    return _generic(err["msg"])


def _generic(message: str) -> str:
    """A pydantic error with no entry in the table: its sentence, in the same voice."""
    for pydantic_words, ours in (("Input should be", "must be"), ("Input should", "must")):
        if message.startswith(pydantic_words):
            return ours + message[len(pydantic_words) :]
    return message


def _length(kind: str, ctx: Mapping[str, Any]) -> str:
    if kind == "string_too_short":
        size = int(ctx.get("min_length", 1))
        return "must not be empty" if size == 1 else f"must be at least {size} characters"
    if kind == "string_too_long":
        return f"must be at most {int(ctx.get('max_length', 0))} characters"
    if kind == "too_short":
        size = int(ctx.get("min_length", 1))
        return "must not be empty" if size == 1 else f"must have at least {size} entries"
    return f"must have at most {_entries(int(ctx.get('max_length', 0)))}"


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _number(value: object, *, duration: bool) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if duration and math.isfinite(value):
            return format_duration(float(value))
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
    return str(value)


# --- "did you mean": the keys a section has ----------------------------------------------------


def _unknown_key(root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    """Names the closest key of the section when it is close enough, else the section's keys."""
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    known = sorted(model.model_fields)
    best = _closest(str(loc[-1]), known)
    if best is not None:
        return f"unknown key; did you mean `{best}`?"
    return f"unknown key (this section has: {', '.join(known)})"


def _closest(typed: str, known: list[str]) -> str | None:
    """The known key ``typed`` most likely misspells: close by difflib's ratio (0.7: a
    letter or two off), or the same letters in another order (``tsl`` for ``tls``)."""
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(typed.lower(), list(lowered), n=1, cutoff=0.7)
    if close:
        return lowered[close[0]]
    swapped = [k for k in known if sorted(k.lower()) == sorted(typed.lower())]
    return swapped[0] if len(swapped) == 1 else None


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The type inside ``Annotated`` and ``X | None``, and the metadata met on the way."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            annotation, metadata = args[0], [*metadata, *args[1:]]
        elif origin in (typing.Union, types.UnionType) and type(None) in args:
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                return typing.Union[tuple(rest)], metadata  # noqa: UP007
            annotation = rest[0]
        else:
            return annotation, metadata


def _step(annotation: Any, part: str | int) -> tuple[Any, list[Any]] | None:
    """The annotation one ``loc`` step below ``annotation`` (and the field's metadata)."""
    inner, _ = _unwrap(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        field = inner.model_fields.get(str(part))
        if field is None:
            return None
        annotation, metadata = _unwrap(field.annotation)
        return annotation, [*metadata, *field.metadata]
    if origin in (dict, Mapping) and len(args) == 2:
        return _unwrap(args[0] if part == "[key]" else args[1])
    if origin in (tuple, list, set, frozenset) and args and isinstance(part, int):
        return _unwrap(args[0])
    if origin in (typing.Union, types.UnionType):  # a discriminated union: the tag is in loc
        for variant in args:
            if _tag_of(variant) == part:
                return _unwrap(variant)
    return None


def _tag_of(variant: Any) -> object:
    if not (isinstance(variant, type) and issubclass(variant, BaseModel)):
        return None
    field = variant.model_fields.get("type")
    literal = typing.get_args(field.annotation) if field is not None else ()
    return literal[0] if len(literal) == 1 else None


def _walk(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[Any, list[Any]] | None:
    here: tuple[Any, list[Any]] | None = (root, [])
    for part in loc:
        if here is None:
            return None
        here = _step(here[0], part)
    return here


def _model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    here = _walk(root, loc)
    if here is None:
        return None
    inner, _ = _unwrap(here[0])
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _metadata_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[Any]:
    here = _walk(root, loc)
    return [] if here is None else here[1]


def _is_duration(metadata: list[Any]) -> bool:
    return any(is_duration_validator(m) for m in metadata)


__all__ = ["operator_message"]
