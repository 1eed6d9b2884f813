"""Issue 14's queue parts: the 'skipped' final state, migration v4, the capture history."""

from __future__ import annotations

import gc
import math
import sqlite3
import weakref
from collections.abc import Callable
from pathlib import Path

from adsync.clock import FakeClock
from adsync.directory.captures import CaptureBook
from adsync.dispatch.retry import decide
from adsync.plugin import Change, Outcome, RetryConfig
from adsync.queue import sql
from adsync.queue.models import AppendStatus, Counters, DeliveryState
from adsync.queue.sql import MIGRATIONS, migrate
from adsync.queue.store import Queue


def test_skipped_and_superseded_are_final_at_once() -> None:
    counters = Counters(attempts=2, expires_at=math.inf)
    for outcome, state in (
        (Outcome.skipped("not in include_groups"), DeliveryState.SKIPPED),
        (Outcome.superseded("newer password set on another DC"), DeliveryState.SUPERSEDED),
    ):
        decision = decide(RetryConfig(), outcome, counters, 100.0, lambda: 0.5)
        assert decision.state is state and decision.next_attempt_at is None
        assert decision.attempts == 3


async def test_a_skipped_row_is_final_and_counted_and_the_password_goes(
    queue: Queue, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change()])
    for backend in ("soffid", "ldap"):  # the queue fixture's two backends: both skip it
        [claim] = (await queue.claim(backend, 1)).claims
        outcome = Outcome.skipped("built-in exclusion krbtgt")
        decision = decide(RetryConfig(), outcome, claim.counters, 0.0, lambda: 0.5)
        await queue.record(claim, decision, "skipped", outcome.reason)
    rows = await queue.list_deliveries()
    assert {r.state for r in rows} == {DeliveryState.SKIPPED}
    assert {r.last_error for r in rows} == {"built-in exclusion krbtgt"}
    assert not any(r.password_held for r in rows)
    assert (await queue.status()).counts["soffid"]["skipped"] == 1
    assert (await queue.claim("soffid", 1)).claims == []


async def test_migration_v4_copies_existing_deliveries(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:3])
    conn.execute("INSERT INTO keys VALUES (1,'data',x'00',0,1)")
    conn.execute(
        "INSERT INTO changes (id, event_id, key_id, account_hash, account_sealed, domain,"
        " changed_at_ms, received_at) VALUES (1, x'01', 1, x'aa', x'bb', '', 0, 0)"
    )
    conn.execute(
        "INSERT INTO deliveries VALUES (1,'b',x'aa','pending',2,1,5.0,9.0,NULL,'rejected','r',1,2)"
    )
    migrate(conn, MIGRATIONS[:4])
    assert conn.execute("SELECT * FROM deliveries").fetchall() == [
        (1, "b", b"\xaa", "pending", 2, 1, 5.0, 9.0, None, "rejected", "r", 1.0, 2.0)
    ]
    conn.execute("UPDATE deliveries SET state = 'skipped'")  # the new CHECK admits it
    conn.close()


async def test_capture_history(queue: Queue) -> None:
    rows = [
        sql.CaptureRow(b"a" * 16, b"h1", 3, "meta", 10.0),
        sql.CaptureRow(b"b" * 16, b"h2", None, None, 20.0),
    ]
    await queue.write(lambda c: sql.insert_captures(c, rows))
    again = [sql.CaptureRow(b"a" * 16, b"h1", 9, "meta", 30.0)]
    await queue.write(lambda c: sql.insert_captures(c, again))
    assert await queue.read(lambda c: sql.capture_of(c, b"a" * 16)) == rows[0]  # first kept
    assert await queue.read(lambda c: sql.captures_since(c, 15.0)) == [rows[1]]
    assert await queue.write(lambda c: sql.prune_captures(c, 15.0)) == 1
    assert await queue.read(lambda c: sql.capture_of(c, b"a" * 16)) is None


async def test_a_capture_being_recorded_keeps_no_password_alive(
    queue: Queue, new_change: Callable[..., Change], clock: FakeClock
) -> None:
    """The record runs after the ACK, behind the writer: it must hold event ids and names
    only. A backlog of captures holding Changes kept thousands of passwords alive during
    a burst, and every live password is work for the log redaction."""
    book = CaptureBook(queue, None, clock)
    changes = [new_change() for _ in range(50)]
    stored = await queue.append_many(changes)
    book.on_stored(changes, [r.status is AppendStatus.STORED for r in stored])
    passwords = [weakref.ref(c.password) for c in changes]  # the record task has started
    ids = [c.event_id for c in changes]
    del changes, stored
    gc.collect()
    assert not [p for p in passwords if p() is not None]
    for event_id in ids:
        assert await book.captured(event_id) is None  # recorded (no directory: no version)
    assert await queue.read(lambda c: sql.capture_of(c, ids[0])) is not None
