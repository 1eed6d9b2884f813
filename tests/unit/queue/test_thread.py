"""The queue's sqlite thread: one connection, calls in order, errors raised where awaited."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from adsync.queue.thread import SqliteThread


async def test_calls_run_in_order_on_one_thread_other_than_the_loops(tmp_path: Path) -> None:
    db = await SqliteThread.open(tmp_path / "t.db")
    try:
        seen: list[tuple[int, int]] = []

        def call(n: int) -> int:
            seen.append((n, threading.get_ident()))
            return n * 2

        results = await asyncio.gather(*(db.run(lambda _c, n=n: call(n)) for n in range(50)))
        assert results == [n * 2 for n in range(50)]
        assert [n for n, _ in seen] == list(range(50))  # queued order
        threads = {ident for _, ident in seen}
        assert len(threads) == 1 and threading.get_ident() not in threads
    finally:
        await db.close()


async def test_the_connection_is_in_autocommit_mode(tmp_path: Path) -> None:
    db = await SqliteThread.open(tmp_path / "t.db")
    try:
        assert await db.run(lambda c: c.isolation_level) is None
        await db.run(lambda c: c.execute("CREATE TABLE t (x)"))
        await db.run(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        # committed without an explicit COMMIT: another connection sees it
        with sqlite3.connect(tmp_path / "t.db") as other:
            assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        await db.close()


async def test_an_error_is_raised_to_its_caller_and_the_thread_goes_on(tmp_path: Path) -> None:
    db = await SqliteThread.open(tmp_path / "t.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.run(lambda c: c.execute("SELECT * FROM missing"))
        with pytest.raises(ZeroDivisionError):
            await db.run(lambda _c: 1 // 0)
        assert await db.run(lambda c: c.execute("SELECT 7").fetchone()[0]) == 7
    finally:
        await db.close()


async def test_close_runs_what_was_queued_then_refuses(tmp_path: Path) -> None:
    db = await SqliteThread.open(tmp_path / "t.db")
    pending = asyncio.ensure_future(db.run(lambda c: c.execute("SELECT 1").fetchone()[0]))
    await asyncio.sleep(0)  # queued before close
    await db.close()
    assert await pending == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await db.run(lambda c: None)
    await db.close()  # twice is harmless


def _sqlite_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "adsync-sqlite")


async def test_a_database_that_cannot_be_opened_fails_open_and_ends_its_thread(
    tmp_path: Path,
) -> None:
    before = _sqlite_threads()
    with pytest.raises(sqlite3.OperationalError):
        await SqliteThread.open(tmp_path / "no-such-dir" / "t.db")
    assert _sqlite_threads() == before
