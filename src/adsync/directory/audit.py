"""The gap audit: password changes this DC originated that this daemon never captured.

A change originated here (the last ``unicodePwd`` write's originating DSA is this
DC's invocation id) must have passed through this DC's filter or hook; no capture
with the same account and a version at least as new means the filter did not see
it (LSA protection refused the DLL, a failed install, a DC restored from backup,
the Samba hook not running). ``find_gaps`` is pure; the result is kept in a small
JSON file beside the queue (no account names, no passwords) so the daemon's
``/status`` and ``/metrics`` can show the last audit.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adsync.accounts import builtin
from adsync.directory.metadata import PasswordVersion, VersionKind
from adsync.queue.sql import CaptureRow

HISTORY_RETENTION = 35 * 86400.0  # capture rows kept (the longest useful --since)
UNVERSIONED_SLACK = 300.0  # a capture without a version matches a change up to 5 min before it


@dataclass(frozen=True, slots=True)
class Gap:
    account: str
    version: int
    changed_at: float | None


def find_gaps(
    changed: Iterable[tuple[str, PasswordVersion | None]],
    captures: Sequence[CaptureRow],
    own_invocation_id: uuid.UUID,
    since: float,
    account_hash: Callable[[str], bytes],
) -> list[Gap]:
    """Accounts whose last password change originated here at or after ``since``, uncaptured."""
    by_account: dict[bytes, list[CaptureRow]] = {}
    for row in captures:
        by_account.setdefault(row.account_hash, []).append(row)
    gaps = []
    for account, version in changed:
        if version is None or version.kind is not VersionKind.META:
            continue  # no origin to read: cannot tell where it was changed
        if version.origin_invocation_id != own_invocation_id or builtin(account):
            continue
        if version.origin_time is not None and version.origin_time < since:
            continue
        rows = by_account.get(account_hash(account), [])
        if not any(_matches(row, version) for row in rows):
            gaps.append(Gap(account, version.value, version.origin_time))
    return sorted(gaps, key=lambda g: (g.changed_at or 0.0, g.account.casefold()))


def _matches(row: CaptureRow, version: PasswordVersion) -> bool:
    if row.pwd_version is not None and row.version_kind == VersionKind.META.value:
        return row.pwd_version >= version.value
    if version.origin_time is None:
        return True
    return row.captured_at >= version.origin_time - UNVERSIONED_SLACK


def state_path(queue_path: Path) -> Path:
    return Path(str(queue_path) + ".audit.json")


def write_state(queue_path: Path, *, at: float, since: float, gaps: int, error: str | None) -> None:
    """The last audit's summary (0600; no account names)."""
    path = state_path(queue_path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"at": at, "since": since, "gaps": gaps, "error": error}, fh)
    os.replace(tmp, path)


def read_state(queue_path: Path | None) -> dict[str, Any] | None:
    if queue_path is None:
        return None
    try:
        data = json.loads(state_path(queue_path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


__all__ = [
    "HISTORY_RETENTION",
    "Gap",
    "find_gaps",
    "read_state",
    "state_path",
    "write_state",
]
