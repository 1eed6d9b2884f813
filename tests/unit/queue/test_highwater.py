"""``<db>.acked``: the acknowledged count outside the WAL, and the start-up check against it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adsync.clock import FakeClock
from adsync.plugin import Change
from adsync.queue import highwater
from adsync.queue.errors import QueueError
from adsync.queue.highwater import MarkWriter, QueueBehind, check, mark_path, read_mark, write_mark
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue


def test_mark_round_trip_and_absence(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    assert read_mark(db) is None
    write_mark(db, 1234)
    assert mark_path(db) == tmp_path / "queue.db.acked"
    assert mark_path(db).stat().st_mode & 0o777 == 0o600
    assert read_mark(db) == 1234


def test_a_torn_slot_leaves_the_other_and_garbage_counts_as_none(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    write_mark(db, 7)
    writer = MarkWriter(db, 7)
    writer.advance(9)  # goes into slot 0; slot 1 still says 7
    writer.close()
    data = bytearray(mark_path(db).read_bytes())
    assert read_mark(db) == 9
    data[5] ^= 0xFF  # slot 0 torn by a power cut mid-write
    mark_path(db).write_bytes(bytes(data))
    assert read_mark(db) == 7  # the older, smaller count: never a false alarm
    mark_path(db).write_bytes(b"not a mark at all, 32 bytes long")
    assert read_mark(db) is None
    mark_path(db).write_bytes(b"")  # created, never written (a crash at the first start)
    assert read_mark(db) is None


def test_check_refuses_only_a_database_behind_the_mark(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    check(db, 0)  # no mark yet
    write_mark(db, 300)
    check(db, 300)
    check(db, 301)  # ahead: commits after the last write of the mark
    with pytest.raises(QueueBehind) as refused:
        check(db, 20)
    message = str(refused.value)
    assert message.startswith(
        "queue.db holds at least 280 fewer changes than it acknowledged "
        "(20 stored, 300 acknowledged per queue.db.acked): was queue.db-wal deleted"
    )
    assert "adsync queue accept-loss" in message and "\n" not in message


def test_the_writer_keeps_the_newest_count_and_never_goes_back(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    writer = MarkWriter(db, 5)
    assert read_mark(db) == 5  # written (and synced) at once when opened
    for n in (6, 8, 7, 12):
        writer.advance(n)
    deadline = time.monotonic() + 10
    while read_mark(db) != 12 and time.monotonic() < deadline:  # the writer's own thread
        time.sleep(0.01)
    assert read_mark(db) == 12
    writer.advance(3)
    writer.close()
    assert read_mark(db) == 12


async def test_the_daemon_queue_keeps_the_mark_and_refuses_a_database_behind_it(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["a"], max_pending=100, clock=clock)
    await q.append_many([new_change("ann"), new_change("bob")])
    await q.append_many([new_change("cid")])
    await q.close()
    assert read_mark(db_path) == 3

    write_mark(db_path, 10)  # as if 7 more had been acknowledged, then their WAL lost
    with pytest.raises(QueueBehind, match="holds at least 7 fewer changes"):
        await Queue.open(db_path, keys, ["a"], max_pending=100, clock=clock)
    operator = await Queue.open(db_path, keys, ["a"], max_pending=100, operator=True)
    await operator.close()  # the CLI still opens it (to look), and leaves the mark alone
    assert read_mark(db_path) == 10

    assert await Queue.accept_loss(db_path) == (10, 3)
    assert read_mark(db_path) == 3
    q = await Queue.open(db_path, keys, ["a"], max_pending=100, clock=clock)
    try:
        with pytest.raises(QueueError, match="another adsync daemon is using the queue"):
            await Queue.accept_loss(db_path)
        await q.append_many([new_change("dan")])
    finally:
        await q.close()
    assert read_mark(db_path) == 4


async def test_accept_loss_needs_a_database(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match="no queue database"):
        await Queue.accept_loss(tmp_path / "missing.db")
    assert not highwater.mark_path(tmp_path / "missing.db").exists()
