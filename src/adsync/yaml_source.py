"""YAML text to plain data plus the line of every key, so config errors can name FILE:LINE.

Kept apart from the config models: this module knows YAML, not adsync's keys.
Error messages never quote the offending source text (it may hold a secret).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

KeyPath = tuple[str | int, ...]

# A quoted token of one character (',' ']' '\t') or a '<placeholder>' is YAML's own word and
# is kept; any longer quoted text may be the operator's and is dropped.
_QUOTED = re.compile(r"""(["'])(?:<[^"'<>]*>|\\.|.)\1|(["'])(.{2,}?)\2""")


def _drop_quoted(text: str, replacement: str) -> str:
    return _QUOTED.sub(lambda m: m.group(0) if m.group(2) is None else replacement, text)


_DUPLICATE = re.compile(r'found duplicate key "([^"]*)"')


class YamlSyntaxError(ValueError):
    """The text is not YAML; ``line`` and ``column`` are 1-based, ``message`` quotes no
    source text."""

    def __init__(self, line: int | None, message: str, column: int | None = None) -> None:
        self.line = line
        self.column = column
        self.message = message
        where = f"line {line}, column {column}" if line and column else f"line {line}"
        super().__init__(f"{where}: {message}" if line else message)


@dataclass(frozen=True)
class YamlDocument:
    """Plain data (dicts, lists, scalars) and the 1-based line of each key or list item."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _safe_problem(exc: MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    if isinstance(exc, DuplicateKeyError):
        match = _DUPLICATE.search(problem)
        key = match.group(1) if match else ""
        return f"duplicate key {key!r}" if key and len(key) <= 64 else "duplicate key"
    # A scanner message can quote the token it choked on: keep the shape, drop the text.
    problem = _drop_quoted(problem, "'…'")
    if exc.context:
        problem = f"{problem} ({_drop_quoted(exc.context, '…')})"
    return problem


def _plain(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            key_path = (*path, key)
            try:
                lines[key_path] = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):  # merged keys (<<) have no position
                lines[key_path] = lines.get(path, 0) or 1
            out[key] = _plain(node[key], key_path, lines)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, item in enumerate(node):
            item_path = (*path, index)
            try:
                lines[item_path] = node.lc.item(index)[0] + 1
            except (KeyError, TypeError, AttributeError):
                lines[item_path] = lines.get(path, 0) or 1
            items.append(_plain(item, item_path, lines))
        return items
    if isinstance(node, str):
        return str(node)  # ruamel's scalar string subclasses -> str
    if isinstance(node, bool) or node is None:
        return bool(node) if node is not None else None
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node  # dates and the like: pydantic will complain about the type


_TAB = "YAML needs spaces for indentation, not tabs"


def _tab_at(text: str, line: int, column: int) -> int | None:
    """The 1-based column of the tab that broke the parse at the 0-based mark (``line``,
    ``column``), if a tab did: the character at the mark, else one in that line's indentation.
    Tabs that parse (in quoted or block text) never reach here."""
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return None
    source = lines[line]
    if source[column : column + 1] == "\t":
        return column + 1
    indentation = source[: len(source) - len(source.lstrip(" \t"))]
    return indentation.index("\t") + 1 if "\t" in indentation else None


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; duplicate keys are errors."""
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise YamlSyntaxError(None, _safe_problem(exc)) from None
        tab = _tab_at(text, mark.line, mark.column)
        if tab is not None:
            raise YamlSyntaxError(mark.line + 1, f"{_TAB} (a tab at column {tab})", tab) from None
        raise YamlSyntaxError(mark.line + 1, _safe_problem(exc), mark.column + 1) from None
    except YAMLError as exc:
        raise YamlSyntaxError(None, f"invalid YAML ({type(exc).__name__})") from None
    lines: dict[KeyPath, int] = {(): 1}
    return YamlDocument(_plain(root, (), lines), lines)
