"""The store on real SQLite files: group commit, idempotency, BUSY, keys, recovery, operator API."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from adsync.clock import FakeClock
from adsync.plugin import Change
from adsync.queue import sql
from adsync.queue.errors import QueueError, QueueKeyError
from adsync.queue.keys import EnvKeyProvider, FileKeyProvider
from adsync.queue.models import AppendStatus, Attempt, Decision, DeliveryState
from adsync.queue.sql import LATEST, MIGRATIONS, migrate
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

BACKENDS = ["soffid", "ldap"]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def rows(db_path: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read through a separate connection: it sees only committed data."""
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, args).fetchall()


async def test_fresh_queue_is_wal_full_sync_and_private(queue: Queue, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert rows(db_path, "PRAGMA journal_mode")[0][0] == "wal"
    pragmas = await queue.read(
        lambda c: (
            c.execute("PRAGMA synchronous").fetchone()[0],
            c.execute("PRAGMA secure_delete").fetchone()[0],
            c.execute("PRAGMA busy_timeout").fetchone()[0],
        )
    )
    assert pragmas == (2, 1, 5000)  # FULL, ON
    assert rows(db_path, "SELECT MAX(version) FROM schema_migrations")[0][0] == LATEST


async def test_append_stores_one_change_and_a_delivery_per_backend(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    change = new_change("carol")
    (result,) = await queue.append_many([change])
    assert result.status is AppendStatus.STORED
    got = rows(
        db_path,
        "SELECT d.backend, d.state FROM deliveries d JOIN changes c ON c.id = d.change_id"
        " WHERE c.event_id = ? ORDER BY d.backend",
        (change.event_id,),
    )
    assert got == [("ldap", "pending"), ("soffid", "pending")]
    sealed = rows(db_path, "SELECT account_sealed, password_sealed FROM changes")[0]
    assert b"carol" not in sealed[0]  # type: ignore[operator]
    assert change.password.reveal_bytes() not in sealed[1]  # type: ignore[operator]


async def test_repeated_event_id_is_duplicate_and_queues_nothing(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    change = new_change()
    assert (await queue.append_many([change]))[0].status is AppendStatus.STORED
    (again,) = await queue.append_many([change])
    assert again.status is AppendStatus.DUPLICATE
    # two copies in one batch: one stored, one duplicate
    twin = new_change()
    (a,), (b,) = await asyncio.gather(queue.append_many([twin]), queue.append_many([twin]))
    assert {a.status, b.status} == {AppendStatus.STORED, AppendStatus.DUPLICATE}
    assert rows(db_path, "SELECT COUNT(*) FROM changes")[0][0] == 2
    assert rows(db_path, "SELECT COUNT(*) FROM deliveries")[0][0] == 4


async def test_group_commit_batches_concurrent_appends_and_acks_after_commit(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    n = 200
    changes = [new_change(f"user{i}") for i in range(n)]
    reader = sqlite3.connect(db_path)
    seen_committed: list[bool] = []

    async def append_and_check(change: Change) -> None:
        (result,) = await queue.append_many([change])
        assert result.status is AppendStatus.STORED
        # another connection sees only committed rows: the row must be there already
        found = reader.execute(
            "SELECT 1 FROM changes WHERE event_id = ?", (change.event_id,)
        ).fetchone()
        seen_committed.append(found is not None)

    before = queue.commits
    await asyncio.gather(*(append_and_check(c) for c in changes))
    reader.close()
    assert seen_committed == [True] * n
    assert 1 <= queue.commits - before < n


async def test_busy_past_max_pending_then_accepts_again(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=3, clock=clock)
    try:
        results = [(await q.append_many([new_change(f"u{i}")]))[0] for i in range(4)]
        assert [r.status for r in results] == [AppendStatus.STORED] * 3 + [AppendStatus.BUSY]
        assert "full" in results[3].reason
        assert rows(db_path, "SELECT COUNT(*) FROM changes")[0][0] == 3
        # deliver one: its password leaves, and there is room again
        batch = await q.claim("only", 1)
        claim = batch.claims[0]
        await q.record(
            claim, Decision(DeliveryState.DELIVERED, 1, 0, None, None, ""), "delivered", ""
        )
        assert (await q.append_many([new_change("u9")]))[0].status is AppendStatus.STORED
    finally:
        await q.close()


async def test_append_many_is_one_transaction_with_a_result_per_change(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=4, clock=clock)
    try:
        first = new_change("a")
        assert (await q.append_many([first]))[0].status is AppendStatus.STORED
        again = [first, *(new_change(f"b{i}") for i in range(5))]
        before = q.commits
        results = await q.append_many(again)
        assert q.commits - before == 1
        # max_pending=4 with one pending leaves room for three, counted before the
        # known id turns out a duplicate; the rest are BUSY (the source resends them)
        assert [r.status for r in results] == [
            AppendStatus.DUPLICATE,
            AppendStatus.STORED,
            AppendStatus.STORED,
            AppendStatus.BUSY,
            AppendStatus.BUSY,
            AppendStatus.BUSY,
        ]
        assert "full" in results[-1].reason
        stored = {bytes(r[0]) for r in rows(db_path, "SELECT event_id FROM changes")}
        assert stored == {c.event_id for c in again[:3]}
        assert q.pending_changes == 3
    finally:
        await q.close()


async def test_disk_full_is_busy_and_the_queue_recovers(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    assert (await queue.append_many([new_change("before")]))[0].status is AppendStatus.STORED
    pages = await queue.read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await queue.read(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    busy = None
    for i in range(2000):
        (result,) = await queue.append_many([new_change(f"filler{i}")])
        if result.status is AppendStatus.BUSY:
            busy = result
            break
    assert busy is not None, "the size cap was never reached"
    assert busy.reason == "queue storage is full"
    stored = rows(db_path, "SELECT COUNT(*) FROM changes")[0][0]
    await queue.read(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    after = new_change("after")
    assert (await queue.append_many([after]))[0].status is AppendStatus.STORED
    assert rows(db_path, "SELECT COUNT(*) FROM changes")[0][0] == stored + 1


async def test_read_only_database_file_is_busy_and_recovers(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=100, clock=clock)
    try:
        await q.read(lambda c: c.execute("PRAGMA query_only = ON"))
        (result,) = await q.append_many([new_change()])
        assert result.status is AppendStatus.BUSY
        assert "read-only" in result.reason or "storage error" in result.reason
        await q.read(lambda c: c.execute("PRAGMA query_only = OFF"))
        assert (await q.append_many([new_change()]))[0].status is AppendStatus.STORED
    finally:
        await q.close()


async def test_closing_queue_answers_busy(queue: Queue, new_change: Callable[..., Change]) -> None:
    await queue.close()
    assert (await queue.append_many([new_change()]))[0].status is AppendStatus.BUSY


async def test_reopen_without_master_key_is_refused(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)
    await q.append_many([new_change()])
    await q.close()
    keys.path.unlink()
    with pytest.raises(QueueKeyError, match="master key is missing"):
        await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)
    assert not keys.path.exists()  # not silently recreated for an existing queue


async def test_reopen_with_wrong_master_key_is_refused(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)
    await q.append_many([new_change()])
    await q.close()
    keys.path.chmod(0o600)
    keys.path.write_bytes(os.urandom(32))
    with pytest.raises(QueueKeyError, match="does not open"):
        await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)


async def test_env_key_missing_for_existing_queue_is_refused(
    db_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    monkeypatch.setenv("TEST_QUEUE_MK", base64.b64encode(os.urandom(32)).decode())
    q = await Queue.open(db_path, EnvKeyProvider("TEST_QUEUE_MK"), BACKENDS, max_pending=1)
    await q.close()
    monkeypatch.delenv("TEST_QUEUE_MK")
    with pytest.raises(QueueKeyError, match="TEST_QUEUE_MK is not set"):
        await Queue.open(db_path, EnvKeyProvider("TEST_QUEUE_MK"), BACKENDS, max_pending=1)


async def test_second_daemon_on_same_queue_is_refused_operator_may_open(
    queue: Queue, db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    with pytest.raises(QueueError, match="another adsync daemon"):
        await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)
    op = await Queue.open(db_path, keys, [], max_pending=0, clock=clock, operator=True)
    assert (await op.status()).pending_changes == 0
    await op.close()


async def test_in_flight_rows_return_to_pending_at_open(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=10, clock=clock)
    await q.append_many([new_change()])
    assert len((await q.claim("only", 5)).claims) == 1
    await q.close()  # as if the daemon died mid-delivery
    assert rows(db_path, "SELECT state FROM deliveries") == [("in_flight",)]
    q = await Queue.open(db_path, keys, ["only"], max_pending=10, clock=clock)
    try:
        assert rows(db_path, "SELECT state FROM deliveries") == [("pending",)]
        assert len((await q.claim("only", 5)).claims) == 1
    finally:
        await q.close()


async def test_v1_database_is_upgraded(db_path: Path, keys: FileKeyProvider, clock: FakeClock):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    conn.close()
    assert rows(db_path, "SELECT MAX(version) FROM schema_migrations")[0][0] == 1
    q = await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)
    await q.close()
    assert rows(db_path, "SELECT version FROM schema_migrations") == [
        (v,) for v in range(1, LATEST + 1)
    ]
    assert rows(db_path, "SELECT name FROM sqlite_master WHERE name = 'seen_events'")


async def test_newer_schema_is_refused(db_path: Path, keys: FileKeyProvider, clock: FakeClock):
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(conn, (*MIGRATIONS, "CREATE TABLE future (x)"))
    conn.close()
    with pytest.raises(QueueError, match="newer than this adsync"):
        await Queue.open(db_path, keys, BACKENDS, max_pending=10, clock=clock)


async def test_swapped_password_ciphertexts_fail_to_open(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=10, clock=clock)
    try:
        await q.append_many([new_change("alice")])
        await q.append_many([new_change("bob")])

        def swap(c: sqlite3.Connection) -> None:
            (a, pa), (b, pb) = c.execute("SELECT id, password_sealed FROM changes").fetchall()
            c.execute("UPDATE changes SET password_sealed = ? WHERE id = ?", (pb, a))
            c.execute("UPDATE changes SET password_sealed = ? WHERE id = ?", (pa, b))

        await q.write(swap)
        batch = await q.claim("only", 5)
        assert batch.claims == []  # neither opens: both are failed as unreadable
        states = rows(db_path, "SELECT state, last_outcome FROM deliveries")
        assert states == [("failed", "unreadable"), ("failed", "unreadable")]
    finally:
        await q.close()


async def test_list_deliveries_shows_who_never_the_password(
    queue: Queue, new_change: Callable[..., Change]
) -> None:
    change = new_change("dave")
    await queue.append_many([change])
    infos = await queue.list_deliveries()
    assert {(i.backend, i.account, i.state) for i in infos} == {
        ("soffid", "dave", DeliveryState.PENDING),
        ("ldap", "dave", DeliveryState.PENDING),
    }
    assert all(i.event_id == change.event_id.hex() and i.password_held for i in infos)
    assert change.password.reveal() not in repr(infos)
    only = await queue.list_deliveries(backend="ldap", state="pending", limit=1)
    assert [(i.backend, i.state) for i in only] == [("ldap", DeliveryState.PENDING)]


async def _fail(q: Queue, backend: str, why: str) -> None:
    batch = await q.claim(backend, 10)
    for claim in batch.claims:
        await q.record(
            claim, Decision(DeliveryState.FAILED, 1, 0, None, None, "failed"), "failed", why
        )


async def test_password_leaves_when_every_delivery_is_terminal(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change("erin")])
    await _fail(queue, "soffid", "HTTP 400")
    assert rows(db_path, "SELECT password_sealed IS NOT NULL FROM changes") == [(1,)]
    batch = await queue.claim("ldap", 10)
    await queue.record(
        batch.claims[0], Decision(DeliveryState.DELIVERED, 1, 0, None, None, ""), "delivered", ""
    )
    assert rows(db_path, "SELECT password_sealed IS NULL FROM changes") == [(1,)]
    failed = await queue.list_deliveries(state="failed")
    assert [(i.account, i.backend, i.last_error, i.password_held) for i in failed] == [
        ("erin", "soffid", "HTTP 400", False)
    ]


async def test_retry_failed_requeues_only_rows_whose_password_is_held(
    queue: Queue, db_path: Path, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change("frank")])
    await _fail(queue, "soffid", "bad config")  # ldap still pending: password held
    clock.advance(100)
    assert await queue.retry_failed(backend="soffid") == 1
    info = next(i for i in await queue.list_deliveries() if i.backend == "soffid")
    assert (info.state, info.attempts, info.next_attempt_at) == (
        DeliveryState.PENDING,
        0,
        clock.time(),
    )
    # now both fail: the password is gone, and retry can do nothing
    await _fail(queue, "soffid", "bad config")
    await _fail(queue, "ldap", "bad config")
    assert await queue.retry_failed() == 0
    assert all(not i.password_held for i in await queue.list_deliveries(state="failed"))


async def test_retry_and_purge_by_event_id(
    queue: Queue, db_path: Path, new_change: Callable[..., Change]
) -> None:
    a, b = new_change("gina"), new_change("hank")
    await queue.append_many([a])
    await queue.append_many([b])
    await _fail(queue, "soffid", "x")
    assert await queue.retry_failed(event_ids=[a.event_id.hex()]) == 1
    with pytest.raises(QueueError, match="not hex"):
        await queue.retry_failed(event_ids=["zz"])
    assert await queue.purge_failed(event_ids=[b.event_id]) == 1
    states = rows(db_path, "SELECT backend, state FROM deliveries ORDER BY change_id, backend")
    assert states == [("ldap", "pending"), ("soffid", "pending"), ("ldap", "pending")]


async def test_purge_of_last_delivery_removes_change_but_remembers_event_id(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=10, clock=clock)
    try:
        change = new_change()
        await q.append_many([change])
        await _fail(q, "only", "x")
        assert await q.purge_failed() == 1
        assert rows(db_path, "SELECT COUNT(*) FROM changes")[0][0] == 0
        assert (await q.append_many([change]))[0].status is AppendStatus.DUPLICATE
    finally:
        await q.close()


async def test_status_counts_and_oldest_pending_age(
    queue: Queue, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change("ivy")])
    clock.advance(30)
    await queue.append_many([new_change("jack")])
    await _fail(queue, "soffid", "x")
    clock.advance(12)
    status = await queue.status()
    assert status.counts["soffid"]["failed"] == 2
    assert status.counts["ldap"]["pending"] == 2
    assert status.pending_changes == 2
    assert status.oldest_pending_age == 42


async def test_prune_completed_keeps_ids_as_duplicates(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=10, clock=clock)
    try:
        change = new_change()
        await q.append_many([change])
        batch = await q.claim("only", 1)
        await q.record(
            batch.claims[0],
            Decision(DeliveryState.DELIVERED, 1, 0, None, None, ""),
            "delivered",
            "",
        )
        clock.advance(3600)
        assert await q.prune_completed(retain=60, remember=86400) == 1
        assert rows(db_path, "SELECT COUNT(*) FROM changes")[0][0] == 0
        assert (await q.append_many([change]))[0].status is AppendStatus.DUPLICATE
    finally:
        await q.close()


async def test_purge_older_than_is_an_age_in_seconds(
    queue: Queue, db_path: Path, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    await queue.append_many([new_change("old")])
    await _fail(queue, "soffid", "x")
    clock.advance(3 * 86400)
    await queue.append_many([new_change("new")])
    await _fail(queue, "soffid", "y")
    assert await queue.purge_failed(older_than=86400) == 1
    left = await queue.list_deliveries(backend="soffid", state="failed")
    assert [i.account for i in left] == ["new"]


async def test_one_claim_supersedes_expires_and_claims_in_a_few_statements(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock, new_change: Callable[..., Change]
) -> None:
    q = await Queue.open(db_path, keys, ["only"], max_pending=100, clock=clock)
    q.set_expire_after("only", 60.0)
    alice = [new_change("alice") for _ in range(3)]
    bob = new_change("bob")
    carol = new_change("carol")
    await q.append_many([alice[0]])
    first = await q.claim("only", 1)  # alice[0] in flight: appends do not supersede it
    assert [c.change.event_id for c in first.claims] == [alice[0].event_id]
    await q.append_many([bob])
    clock.advance(61)  # bob's row is past its expiry when claimed
    await q.append_many([alice[1]])
    await q.append_many([alice[2]])  # supersedes alice[1] as it is stored
    await q.release("only", [first.claims[0].change_id])  # back to pending, behind alice[2]
    await q.append_many([carol])
    await q.close()

    conn = sqlite3.connect(db_path, isolation_level=None)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    conn.execute("BEGIN IMMEDIATE")
    result = sql.claim(conn, "only", 10, clock.time())
    conn.execute("COMMIT")
    conn.set_trace_callback(None)
    # one page of candidates, three updates, one password drop, next due, one load
    assert len(statements) - 2 <= 7
    claimed = [bytes(r.event_id) for r in result.rows]
    assert claimed == [alice[2].event_id, carol.event_id]  # only the newest per account
    assert result.finished == 2  # bob expired, alice[0] superseded
    state = {
        bytes(eid): (st, outcome, pw is not None)
        for eid, st, outcome, pw in conn.execute(
            "SELECT c.event_id, d.state, d.last_outcome, c.password_sealed"
            " FROM deliveries d JOIN changes c ON c.id = d.change_id"
        )
    }
    conn.close()
    assert state[bob.event_id] == ("failed", "expired", False)
    assert state[alice[0].event_id] == ("superseded", "superseded", False)
    assert state[alice[1].event_id] == ("superseded", "superseded", False)
    assert state[alice[2].event_id] == ("in_flight", None, True)
    assert state[carol.event_id] == ("in_flight", None, True)
    assert result.dropped == 2


async def test_a_claim_reads_every_stored_field_back_exactly(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    """Every field of a claimed row comes back as stored: times to the last bit, text with
    quotes and accents intact, 64-bit integers (a claim that read its rows through text,
    as one tried, must keep this)."""
    password = 'Jsön-"Pässwört"-\\n-€'
    REGISTRY.password(password)
    change = Change(
        event_id=bytes(range(16)),
        account='o\'brien "ö"',
        password=Secret(password),
        changed_at_ms=1_764_748_800_123,
        domain="ÉXAMPLE",
        source_host='dc01.ex"ample.com/é',
        rid=2**31 - 1,
        object_guid=uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        sequence=2**62,
    )
    clock.advance(1 / 3)  # times a 15-digit rendering would change
    q = await Queue.open(db_path, keys, ["only"], max_pending=100, clock=clock)
    try:
        q.set_expire_after("only", 86400 / 7)
        await q.append_many([change])
        [first] = (await q.claim("only", 5)).claims
        unknown_since = clock.time() - 1 / 7
        decision = Decision(DeliveryState.PENDING, 1, 1, unknown_since, clock.time(), "")
        await q.record_many([Attempt(first, decision, "unknown_user", "no such user")])
        [again] = (await q.claim("only", 5)).claims
    finally:
        await q.close()
    [stored] = rows(
        db_path,
        "SELECT d.change_id, d.account_hash, d.attempts, d.rejections, d.first_unknown_user_at,"
        " d.expires_at, c.received_at FROM deliveries d JOIN changes c ON c.id = d.change_id",
    )
    assert (again.change_id, again.account_hash) == (stored[0], stored[1])
    counters = again.counters
    assert (counters.attempts, counters.rejections) == (1, 1)
    assert counters.first_unknown_user_at == stored[4] == unknown_since
    assert counters.expires_at == stored[5] == first.counters.expires_at
    assert again.received_at == stored[6] == first.received_at
    got = again.change
    assert (got.event_id, got.account, got.domain, got.source_host) == (
        change.event_id, change.account, change.domain, change.source_host,
    )  # fmt: skip
    assert (got.rid, got.object_guid, got.sequence, got.changed_at_ms) == (
        change.rid, change.object_guid, change.sequence, change.changed_at_ms,
    )  # fmt: skip
    assert sha(got.password.reveal()) == sha(password)
