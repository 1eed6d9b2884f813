"""The few config keys a hook needs, read without pydantic or a YAML library.

Loading the full config (ruamel.yaml + pydantic) costs ~0.4 s; Samba starts a hook
per event. The config is read here with a reader for the plain block style the
documented config uses (``section:`` then indented ``key: value``) and JSON. If
a needed section is written in a form it does not handle (flow style, anchors,
multi-line scalars), it falls back to the full loader: slower, never wrong.
The daemon validates the whole file; this reads only what a hook needs.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # importing typing would cost every hook call ~5 ms
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/run/adsync/filter.sock"
DEFAULT_QUEUE = "/var/lib/adsync/queue.db"
DEFAULT_CHECK_DEADLINE = 3.0
MAX_CHECK_DEADLINE = 8.0  # Samba kills the script at 10 s: keep 2 s for start-up and load
NEEDED = {
    "ingest": ("unix_socket",),
    "precheck": ("on_undecided",),
    "samba": ("initial_dump", "check_deadline"),
    "queue": ("path",),
}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789-")


class HookConfigError(ValueError):
    """The config cannot give a hook what it needs; the message names file and key."""


class _NeedFullLoader(Exception):
    pass


class HookSettings:
    """What a hook reads from the config; paths are absolute strings (no pathlib: start time)."""

    __slots__ = ("check_deadline", "initial_dump", "on_undecided", "state_dir", "unix_socket")

    def __init__(
        self,
        *,
        unix_socket: str | None,
        on_undecided: str,
        initial_dump: str,
        check_deadline: float,
        state_dir: str,
    ) -> None:
        self.unix_socket = unix_socket  # None: ingest.unix_socket is off
        self.on_undecided = on_undecided  # "accept" | "reject"
        self.initial_dump = initial_dump  # "skip" | "forward"
        self.check_deadline = check_deadline  # seconds, <= MAX_CHECK_DEADLINE
        self.state_dir = state_dir  # hook state (baseline, sent keys, back-off): the queue's dir


def _scalar(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        if end < 0:
            raise _NeedFullLoader
        return text[1:end]
    for at, char in enumerate(text):  # a comment starts at " #"
        if char == "#" and at > 0 and text[at - 1] in " \t":
            text = text[:at].strip()
            break
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text[:1] in ("{", "[", "|", ">", "&", "*", "!", "%", "@", "`"):
        raise _NeedFullLoader
    return text


def _key_line(line: str) -> tuple[str, str | None] | None:
    """``key: value`` (value None when nothing follows the colon), else None."""
    stripped = line.lstrip(" ")
    colon = stripped.find(":")
    if colon <= 0 or stripped[0] not in _NAME_START:
        return None
    name = stripped[:colon].rstrip()
    if any(c not in _NAME_CHARS for c in name):
        return None
    rest = stripped[colon + 1 :]
    if not rest.strip():
        return name, None
    if rest[0] not in " \t":
        return None
    return name, rest.strip()


def read_block_yaml(text: str) -> dict[str, dict[str, Any]]:
    """Second-level scalars of the sections in ``NEEDED``; absent keys are absent."""
    found: dict[str, dict[str, Any]] = {}
    section: str | None = None
    child_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped in ("---", "..."):
            continue
        match = _key_line(line)
        indent = len(line) - len(line.lstrip(" "))
        if "\t" in line[: indent + 1] and section in NEEDED:
            raise _NeedFullLoader
        if indent == 0:
            section = None
            if match is None:
                continue
            name, value = match
            if name in NEEDED:
                if value is not None and _scalar(value) is not None:
                    raise _NeedFullLoader  # e.g. "samba: {initial_dump: forward}"
                section, child_indent = name, None
                found.setdefault(name, {})
            continue
        if section is None:
            continue
        if child_indent is None:
            child_indent = indent
        if indent != child_indent or match is None:
            continue  # deeper levels (e.g. backends' sub-keys) are not needed
        key, value = match
        if key in NEEDED[section]:
            found[section][key] = _scalar(value) if value is not None else None
    return found


def parse_seconds(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise HookConfigError(f"{where}: a duration such as 500ms or 8s")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        unit = "ms" if text.endswith("ms") else text[-1:]
        number = text[: len(text) - len(unit)]
        if unit in _UNITS and number and number.replace(".", "", 1).isdigit():
            if number[0] != "." and number[-1] != "." and number.isascii():
                return float(number) * _UNITS[unit]
    raise HookConfigError(f"{where}: a duration such as 500ms or 8s")


def _full_load(path: str) -> dict[str, dict[str, Any]]:
    from pathlib import Path

    from adsync.config import ConfigError, load_config

    try:
        config = load_config(Path(path))
    except ConfigError as exc:
        raise HookConfigError(str(exc)) from None
    return {
        "ingest": {"unix_socket": config.ingest.unix_socket},
        "precheck": {"on_undecided": config.precheck.on_undecided},
        "samba": {
            "initial_dump": config.samba.initial_dump,
            "check_deadline": config.samba.check_deadline,
        },
        "queue": {"path": config.queue.path},
    }


def load_hook_settings(path: str) -> HookSettings:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise HookConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise HookConfigError(f"{path}: not UTF-8") from None
    try:
        if text.lstrip().startswith("{"):
            import json

            loaded = json.loads(text)  # JSON is YAML too
            if not isinstance(loaded, dict):
                raise HookConfigError(f"{path}: the top level must be a mapping")
            raw = {k: v for k, v in loaded.items() if k in NEEDED and isinstance(v, dict)}
        else:
            raw = read_block_yaml(text)
    except (_NeedFullLoader, ValueError) as exc:
        if isinstance(exc, HookConfigError):
            raise
        raw = _full_load(path)
    return _settings(path, raw)


def _absolute(base: str, value: str) -> str:
    return value if os.path.isabs(value) else os.path.join(base, value)


def _settings(path: str, raw: dict[str, dict[str, Any]]) -> HookSettings:
    ingest, precheck = raw.get("ingest", {}), raw.get("precheck", {})
    samba, queue = raw.get("samba", {}), raw.get("queue", {})
    socket = ingest["unix_socket"] if "unix_socket" in ingest else DEFAULT_SOCKET
    on_undecided = precheck.get("on_undecided") or "accept"
    if on_undecided not in ("accept", "reject"):
        raise HookConfigError(f"{path}: precheck.on_undecided: must be accept or reject")
    initial_dump = samba.get("initial_dump") or "skip"
    if initial_dump not in ("skip", "forward"):
        raise HookConfigError(f"{path}: samba.initial_dump: must be skip or forward")
    deadline_raw = samba.get("check_deadline")
    deadline = (
        DEFAULT_CHECK_DEADLINE
        if deadline_raw is None
        else parse_seconds(deadline_raw, f"{path}: samba.check_deadline")
    )
    if not 0 < deadline <= MAX_CHECK_DEADLINE:
        raise HookConfigError(f"{path}: samba.check_deadline: must be > 0 and at most 8s")
    base = os.path.dirname(os.path.realpath(path))
    queue_path = _absolute(base, str(queue.get("path") or DEFAULT_QUEUE))
    return HookSettings(
        unix_socket=None if socket is None else _absolute(base, str(socket)),
        on_undecided=on_undecided,
        initial_dump=initial_dump,
        check_deadline=deadline,
        state_dir=os.path.dirname(queue_path),
    )
