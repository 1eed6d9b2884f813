"""The gap audit (pure part): what counts as a change made here and not captured."""

from __future__ import annotations

import hashlib
import uuid

from adsync.directory.audit import find_gaps, read_state, write_state
from adsync.directory.metadata import PasswordVersion, VersionKind, from_pwd_last_set
from adsync.queue.sql import CaptureRow

HERE = uuid.UUID("4fd5c182-8beb-449a-a737-cb443682feac")
OTHER = uuid.UUID("0b9b6d5e-2f0e-4c55-9d44-3f0d7a1c2e11")
T = 1_796_000_000.0


def h(account: str) -> bytes:
    return hashlib.sha256(account.casefold().encode()).digest()[:16]


def meta(version: int, origin: uuid.UUID = HERE, at: float = T) -> PasswordVersion:
    return PasswordVersion(version, VersionKind.META, origin, at)


def capture(account: str, version: int | None, at: float = T + 1) -> CaptureRow:
    kind = None if version is None else "meta"
    return CaptureRow(b"e" * 16, h(account), version, kind, at)


def test_gaps() -> None:
    changed = [
        ("captured", meta(3)),
        ("missed", meta(2)),
        ("older-capture", meta(5)),
        ("elsewhere", meta(9, OTHER)),  # made on another DC: its own daemon captures it
        ("before-window", meta(2, at=T - 3600)),
        ("krbtgt", meta(4)),  # built-in exclusion: never delivered, never expected
        ("WS01$", meta(4)),
        ("no-metadata", from_pwd_last_set(1)),
        ("unversioned", meta(2)),
    ]
    captures = [
        capture("captured", 3),
        capture("older-capture", 4),
        capture("unversioned", None, at=T + 10),
    ]
    gaps = find_gaps(changed, captures, HERE, T - 60, h)
    assert [(g.account, g.version) for g in gaps] == [("missed", 2), ("older-capture", 5)]


def test_an_unversioned_capture_long_before_the_change_does_not_match() -> None:
    gaps = find_gaps([("a", meta(2))], [capture("a", None, at=T - 3600)], HERE, T - 60, h)
    assert [g.account for g in gaps] == ["a"]


def test_state_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    queue = tmp_path / "queue.db"
    assert read_state(queue) is None
    write_state(queue, at=T, since=T - 7 * 86400, gaps=2, error=None)
    assert read_state(queue) == {"at": T, "since": T - 7 * 86400, "gaps": 2, "error": None}
    assert (tmp_path / "queue.db.audit.json").stat().st_mode & 0o777 == 0o600
