"""What operations read from the queue: depth, the write probe, outcome hooks, batched records."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from adsync.clock import FakeClock
from adsync.plugin import Change
from adsync.queue import sql
from adsync.queue.keys import FileKeyProvider
from adsync.queue.models import Attempt, DecidedBy, Decision, DeliveryState
from adsync.queue.store import APPEND_FAILURE_MEMORY, PROBE_BYTES, AppendStatus, Queue

Heard = tuple[str, str, DeliveryState, float | None, str]


def rows(db_path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(query).fetchall()


def delivered() -> Decision:
    return Decision(DeliveryState.DELIVERED, 1, 0, None, None, "")


def retry_at(when: float) -> Decision:
    return Decision(DeliveryState.PENDING, 1, 0, None, when, "retry after unreachable")


async def test_depth_counts_by_backend_and_state_with_oldest_unfinished(
    queue: Queue, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    first_at = clock.time()
    await queue.append_many([new_change("ann")])
    clock.advance(20)
    await queue.append_many([new_change("ben")])
    batch = await queue.claim("soffid", 10)
    await queue.record_many([Attempt(c, delivered(), "delivered", "") for c in batch.claims])
    clock.advance(5)
    depth = await queue.depth()
    assert depth.counts == {"soffid": {"delivered": 2}, "ldap": {"pending": 2}}
    assert depth.oldest_created_at == {"ldap": first_at}
    assert depth.oldest_age("ldap") == 25 and depth.oldest_age("soffid") is None
    assert depth.unfinished == 2 and depth.changes_holding_password == 2
    status = await queue.status()  # the operator's view, from the same query
    assert status.counts["soffid"]["delivered"] == 2 and status.counts["soffid"]["pending"] == 0
    assert (status.pending_changes, status.oldest_pending_age) == (2, 25)


async def test_depth_lists_a_configured_backend_without_rows(queue: Queue) -> None:
    depth = await queue.depth()
    assert depth.counts == {"soffid": {}, "ldap": {}}
    assert depth.unfinished == 0


async def test_record_many_is_one_transaction_and_the_hook_hears_each_after_commit(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    heard: list[Heard] = []
    committed_when_heard: list[list[tuple[object, ...]]] = []

    def hook(backend: str, outcome: str, state: DeliveryState, latency: float | None, error: str):
        committed_when_heard.append(rows(db_path, "SELECT state FROM deliveries ORDER BY 1"))
        heard.append((backend, outcome, state, latency, error))

    q = await Queue.open(db_path, keys, ["a", "b"], max_pending=100, clock=clock, on_record=hook)
    try:
        await q.append_many([new_change("cat"), new_change("dan")])
        clock.advance(7)
        got = [c for b in ("a", "b") for c in (await q.claim(b, 10)).claims]
        assert len(got) == 4
        attempts = [
            Attempt(got[0], delivered(), "delivered", ""),
            Attempt(got[1], retry_at(clock.time() + 60), "unreachable", "down"),
            Attempt(got[2], delivered(), "delivered", ""),
            Attempt(
                got[3],
                Decision(DeliveryState.FAILED, 1, 0, None, None, "expired", DecidedBy.EXPIRY),
                "expired",
                "expired: down",
            ),
        ]
        before = q.commits
        await q.record_many(attempts)
        assert q.commits - before == 1
        assert heard == [
            ("a", "delivered", DeliveryState.DELIVERED, 7.0, ""),
            ("a", "unreachable", DeliveryState.PENDING, None, "down"),
            ("b", "delivered", DeliveryState.DELIVERED, 7.0, ""),
            ("b", "expired", DeliveryState.FAILED, None, "expired: down"),
        ]
        # every call came after the commit: all four rows were already stored
        expected = [("delivered",), ("delivered",), ("failed",), ("pending",)]
        assert committed_when_heard == [expected] * 4
        # "cat" is terminal everywhere: its password is gone; "dan" waits for a retry
        assert rows(db_path, "SELECT password_sealed IS NULL FROM changes ORDER BY id") == [
            (1,),
            (0,),
        ]
        assert q.pending_changes == 1
    finally:
        await q.close()


async def test_record_ignores_a_row_no_longer_in_flight(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change("eve")])
    claim = (await queue.claim("soffid", 1)).claims[0]
    await queue.release("soffid", [claim.change_id])  # the stop's grace ran out
    await queue.record(claim, delivered(), "delivered", "")
    assert rows(db_path, "SELECT backend, state FROM deliveries ORDER BY 1") == [
        ("ldap", "pending"),
        ("soffid", "pending"),
    ]


async def test_write_probe_is_none_when_writable_and_says_why_when_not(queue: Queue) -> None:
    assert await queue.write_probe() is None
    before = queue.commits
    await queue.write_probe()
    assert queue.commits == before + 1  # a real transaction went through the writer
    await queue.read(lambda c: c.execute("PRAGMA query_only = ON"))
    try:
        problem = await queue.write_probe()
    finally:
        await queue.read(lambda c: c.execute("PRAGMA query_only = OFF"))
    assert problem is not None and problem.startswith("a write transaction failed")
    assert await queue.write_probe() is None


async def test_write_probe_reports_a_file_it_cannot_open(
    queue: Queue, db_path: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved.db"
    db_path.rename(moved)
    db_path.mkdir()  # a directory where the file was: open(O_RDWR) fails even for root
    try:
        problem = await queue.write_probe()
    finally:
        db_path.rmdir()
        moved.rename(db_path)
    assert problem == "queue.db cannot be opened for writing (Is a directory)"


async def test_set_backends_changes_the_fan_out_of_new_changes_only(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change("fay")])
    queue.set_backends(["ldap", "scim"], {"ldap": 60.0, "scim": 120.0, "soffid": 1.0})
    assert queue.backends == ["ldap", "scim"]
    await queue.append_many([new_change("gus")])
    got = rows(
        db_path,
        "SELECT change_id, backend, expires_at - created_at FROM deliveries ORDER BY 1, 2",
    )
    assert [(c, b) for c, b, _ in got] == [(1, "ldap"), (1, "soffid"), (2, "ldap"), (2, "scim")]
    assert [ttl for c, _, ttl in got if c == 2] == [60.0, 120.0]


async def test_write_probe_needs_room_for_new_pages(queue: Queue, db_path: Path) -> None:
    """The probe commits a fresh row of ``PROBE_BYTES``: new WAL pages, as an append needs."""
    wal = db_path.with_name(db_path.name + "-wal")
    assert await queue.write_probe() is None
    before = wal.stat().st_size
    assert await queue.write_probe() is None
    assert wal.stat().st_size - before >= PROBE_BYTES  # frames a full disk refuses


async def test_a_refused_append_keeps_the_probe_failing_for_a_while(
    queue: Queue, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    """An append the disk refused counts for ``APPEND_FAILURE_MEMORY`` s, or until one is stored.

    The refusal is made with a temporary trigger that fails the insert with SQLite's
    full-disk message: the probe's own writes still commit, as for a batch larger
    than the probe's row on a nearly full disk.
    """
    await queue.read(
        lambda c: c.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.changes"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    )
    [result] = await queue.append_many([new_change("ann")])
    assert (result.status, result.reason) == (AppendStatus.BUSY, "queue storage is full")
    clock.advance(3)
    assert await queue.write_probe() == "queue storage is full: an append was refused 3s ago"
    clock.advance(APPEND_FAILURE_MEMORY - 3)
    assert await queue.write_probe() is None  # forgotten: the probe alone decides again

    [result] = await queue.append_many([new_change("bob")])
    assert result.status is AppendStatus.BUSY
    assert await queue.write_probe() is not None
    await queue.read(lambda c: c.execute("DROP TRIGGER temp.refuse"))
    [result] = await queue.append_many([new_change("cid")])
    assert result.status is AppendStatus.STORED
    assert await queue.write_probe() is None  # a stored append clears it at once


async def test_record_many_stores_every_field_across_statement_chunks(
    db_path: Path,
    keys: FileKeyProvider,
    clock: FakeClock,
    new_change: Callable[..., Change],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outcomes go in one UPDATE per chunk of rows (not a step per row): each row still
    gets its own values, exactly, whichever chunk carries it."""
    monkeypatch.setattr(sql, "_RECORD_ROWS", 3)
    q = await Queue.open(db_path, keys, ["a"], max_pending=100, clock=clock)
    try:
        await q.append_many([new_change(f"user{i}") for i in range(7)])
        claims = (await q.claim("a", 10)).claims
        assert len(claims) == 7
        retry = clock.time() + 1 / 3  # a float that JSON or text would round
        attempts = [
            Attempt(
                c,
                Decision(DeliveryState.PENDING, i + 1, i, clock.time() - i / 7, retry + i, ""),
                "unreachable",
                f"down {i}",
            )
            for i, c in enumerate(claims)
        ]
        await q.record_many(attempts)
        stored = rows(
            db_path,
            "SELECT change_id, state, attempts, rejections, first_unknown_user_at,"
            " next_attempt_at, last_outcome, last_error FROM deliveries ORDER BY change_id",
        )
        assert stored == [
            (
                a.claim.change_id,
                "pending",
                a.decision.attempts,
                a.decision.rejections,
                a.decision.first_unknown_user_at,
                a.decision.next_attempt_at,
                "unreachable",
                a.error,
            )
            for a in sorted(attempts, key=lambda a: a.claim.change_id)
        ]
    finally:
        await q.close()
