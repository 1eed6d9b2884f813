"""The few config keys a hook needs, read without pydantic or a YAML library.

Loading the full config (ruamel.yaml + pydantic) costs ~0.4 s; Samba starts a hook
per event. The config is read here with a reader for the plain block style the
documented config uses (``section:`` then indented ``key: value``) and JSON. If
a needed section is written in a form it does not handle (flow style, anchors,
multi-line scalars), it falls back to the full loader: slower, never wrong.
The daemon validates the whole file; this reads only what a hook needs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SOCKET = Path("/run/adsync/filter.sock")
DEFAULT_QUEUE = Path("/var/lib/adsync/queue.db")
DEFAULT_CHECK_DEADLINE = 8.0
SAMBA_CHECK_LIMIT = 10.0  # Samba kills the check script after 10 s and counts a rejection
NEEDED = {
    "ingest": ("unix_socket",),
    "precheck": ("on_undecided",),
    "samba": ("initial_dump", "check_deadline"),
    "queue": ("path",),
}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$")


class HookConfigError(ValueError):
    """The config cannot give a hook what it needs; the message names file and key."""


class _NeedFullLoader(Exception):
    pass


@dataclass(frozen=True)
class HookSettings:
    unix_socket: Path | None
    on_undecided: str  # "accept" | "reject"
    initial_dump: str  # "skip" | "forward"
    check_deadline: float  # seconds, < Samba's 10 s
    state_dir: Path  # where samba-sync keeps its baseline and sent keys (next to the queue)


def _scalar(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        if end < 0:
            raise _NeedFullLoader
        return text[1:end]
    text = re.split(r"\s+#", text, maxsplit=1)[0].strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text[:1] in ("{", "[", "|", ">", "&", "*", "!", "%", "@", "`"):
        raise _NeedFullLoader
    return text


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
        match = _KEY_LINE.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if "\t" in line[: indent + 1] and section in NEEDED:
            raise _NeedFullLoader
        if indent == 0:
            section = None
            if match is None:
                continue
            name, value = match.group(2), match.group(3)
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
        key, value = match.group(2), match.group(3)
        if key in NEEDED[section]:
            found[section][key] = _scalar(value) if value is not None else None
    return found


def parse_seconds(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise HookConfigError(f"{where}: a duration such as 500ms or 8s")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise HookConfigError(f"{where}: a duration such as 500ms or 8s")


def _full_load(path: Path) -> dict[str, dict[str, Any]]:
    from adsync.config import ConfigError, load_config

    try:
        config = load_config(path)
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


def load_hook_settings(path: Path) -> HookSettings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HookConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise HookConfigError(f"{path}: not UTF-8") from None
    try:
        if text.lstrip().startswith("{"):
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


def _settings(path: Path, raw: dict[str, dict[str, Any]]) -> HookSettings:
    ingest, precheck = raw.get("ingest", {}), raw.get("precheck", {})
    samba, queue = raw.get("samba", {}), raw.get("queue", {})
    socket = (
        ingest.get("unix_socket", DEFAULT_SOCKET) if "unix_socket" in ingest else DEFAULT_SOCKET
    )
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
    if not 0 < deadline < SAMBA_CHECK_LIMIT:
        raise HookConfigError(f"{path}: samba.check_deadline: must be > 0 and < 10s")
    queue_path = Path(queue.get("path") or DEFAULT_QUEUE)
    if not queue_path.is_absolute():
        queue_path = path.resolve().parent / queue_path
    unix_socket = None if socket is None else Path(socket)
    if unix_socket is not None and not unix_socket.is_absolute():
        unix_socket = path.resolve().parent / unix_socket
    return HookSettings(
        unix_socket=unix_socket,
        on_undecided=on_undecided,
        initial_dump=initial_dump,
        check_deadline=deadline,
        state_dir=queue_path.parent,
    )
