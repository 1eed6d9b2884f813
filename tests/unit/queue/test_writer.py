"""The group writer's transaction: ops share it; a bug in one undoes that one only."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from adsync.queue.store import Queue


def remember(
    event_id: bytes, fail: Exception | None = None
) -> Callable[[sqlite3.Connection], bytes]:
    def op(conn: sqlite3.Connection) -> bytes:
        conn.execute("INSERT INTO seen_events (event_id, seen_at) VALUES (?, 0)", (event_id,))
        if fail is not None:
            raise fail
        return event_id

    return op


def seen(db_path: Path) -> set[bytes]:
    with sqlite3.connect(db_path) as conn:
        return {bytes(r[0]) for r in conn.execute("SELECT event_id FROM seen_events")}


async def test_a_failing_op_is_undone_alone_and_the_others_commit(
    queue: Queue, db_path: Path
) -> None:
    before = queue.commits
    results = await asyncio.gather(
        queue.write(remember(b"a" * 16)),
        queue.write(remember(b"b" * 16, ValueError("a bug in this op"))),
        queue.write(remember(b"c" * 16)),
        return_exceptions=True,
    )
    assert queue.commits - before == 1  # one transaction for the three
    assert results[0] == b"a" * 16 and results[2] == b"c" * 16
    assert isinstance(results[1], ValueError)
    assert seen(db_path) == {b"a" * 16, b"c" * 16}


async def test_a_sqlite_error_fails_the_whole_transaction(queue: Queue, db_path: Path) -> None:
    results = await asyncio.gather(
        queue.write(remember(b"d" * 16)),
        queue.write(remember(b"d" * 16)),  # the same key again: IntegrityError
        return_exceptions=True,
    )
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert seen(db_path) == set()
    assert await queue.write(remember(b"e" * 16)) == b"e" * 16  # and the writer goes on
    with pytest.raises(sqlite3.IntegrityError):
        await queue.write(remember(b"e" * 16))
    assert seen(db_path) == {b"e" * 16}
