"""Supersede by source order, not arrival (issue 10, item 5): docs/queue.md "Order and supersede".

Real SQLite files; changes are compared by digest of their event ids, never by password.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from adsync.clock import FakeClock
from adsync.plugin import Change
from adsync.queue.keys import FileKeyProvider
from adsync.queue.models import Decision, DeliveryState
from adsync.queue.sql import MIGRATIONS, migrate
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

T0 = 1_700_000_000_000


def change(
    at: int, host: str | None = "DC1", seq: int | None = None, account: str = "alice"
) -> Change:
    pw = f"Src-Order-{os.urandom(6).hex()}-€"
    REGISTRY.password(pw)
    return Change(
        event_id=os.urandom(16),
        account=account,
        password=Secret(pw),
        changed_at_ms=at,
        domain="ADSYNC",
        source_host=host,
        sequence=seq,
    )


def states(db_path: Path) -> dict[bytes, str]:
    with sqlite3.connect(db_path) as conn:
        return {
            bytes(e): str(s)
            for e, s in conn.execute(
                "SELECT c.event_id, d.state FROM deliveries d JOIN changes c ON c.id = d.change_id"
            )
        }


async def open_queue(db_path: Path, keys: FileKeyProvider, clock: FakeClock) -> Queue:
    return await Queue.open(db_path, keys, ["only"], max_pending=100, clock=clock)


async def deliver_all(q: Queue) -> list[bytes]:
    """Claim and deliver until nothing is due; the event ids sent, in order."""
    sent: list[bytes] = []
    while claims := (await q.claim("only", 10)).claims:
        for c in claims:
            sent.append(c.change.event_id)
            done = Decision(DeliveryState.DELIVERED, 1, 0, None, None, "")
            await q.record(c, done, "delivered", "")
    return sent


async def test_older_arriving_after_newer_was_queued_is_superseded_never_claimed(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    newer, older = change(T0 + 50, seq=11), change(T0 + 10, seq=10)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([newer])
        await q.append_many([older])  # the spool path: arrives last
        assert await deliver_all(q) == [newer.event_id]
    finally:
        await q.close()
    assert states(db_path) == {newer.event_id: "delivered", older.event_id: "superseded"}


async def test_older_arriving_after_newer_was_delivered_is_superseded(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    newer, older = change(T0 + 50, seq=11), change(T0 + 10, seq=10)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([newer])
        assert await deliver_all(q) == [newer.event_id]
        await q.append_many([older])
        assert await deliver_all(q) == []
    finally:
        await q.close()
    assert states(db_path)[older.event_id] == "superseded"


async def test_same_changed_at_on_one_host_the_sequence_decides(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    high, low = change(T0, seq=2**62 + 7), change(T0, seq=2**62 + 6)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([high])
        await q.append_many([low])
        assert await deliver_all(q) == [high.event_id]
    finally:
        await q.close()
    assert states(db_path)[low.event_id] == "superseded"


async def test_across_hosts_changed_at_decides_not_the_sequence(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    # DC2's sequence is far above DC1's (another base), but DC1's change is later in time.
    dc1_later, dc2_earlier = change(T0 + 5, "DC1", seq=100), change(T0 + 1, "DC2", seq=10**15)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([dc1_later])
        await q.append_many([dc2_earlier])
        assert await deliver_all(q) == [dc1_later.event_id]
    finally:
        await q.close()
    assert states(db_path)[dc2_earlier.event_id] == "superseded"


async def test_without_source_order_arrival_still_decides_and_accounts_are_apart(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    first, second = change(T0, None, None), change(T0, None, None)
    bob = change(T0 - 1000, account="bob")
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([first, second, bob])
        assert sorted(await deliver_all(q)) == sorted([second.event_id, bob.event_id])
    finally:
        await q.close()
    assert states(db_path)[first.event_id] == "superseded"


async def test_v4_database_gets_the_source_order_of_its_queued_rows(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    newer, older = change(T0 + 50, seq=2), change(T0 + 10, seq=1)
    q = await open_queue(db_path, keys, clock)
    await q.append_many([newer, older])
    await q.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    # Back to v4: what an older adsync left behind, rows queued in arrival order only.
    conn.execute("DROP INDEX deliveries_order")
    conn.execute("DROP TABLE pruned_order")
    for column in ("src_at", "src_host", "src_seq"):
        conn.execute(f"ALTER TABLE deliveries DROP COLUMN {column}")
    conn.execute("CREATE INDEX deliveries_account ON deliveries (backend, account_hash, change_id)")
    conn.execute("DELETE FROM schema_migrations WHERE version = 5")
    assert migrate(conn, MIGRATIONS) == 4
    conn.close()
    q = await open_queue(db_path, keys, clock)
    try:
        assert await deliver_all(q) == [newer.event_id]
    finally:
        await q.close()


async def test_older_arriving_after_newer_was_pruned_is_still_superseded(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    newer, older = change(T0 + 50, seq=11), change(T0 + 10, seq=10)
    newest = change(T0 + 90, seq=12)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([newer])
        assert await deliver_all(q) == [newer.event_id]
        clock.advance(100)
        assert await q.prune_completed(retain=10, remember=1000) == 1
        await q.append_many([older, newest])
        assert await deliver_all(q) == [newest.event_id]  # a newer one still goes out
        assert states(db_path)[older.event_id] == "superseded"
        clock.advance(100)
        assert await q.prune_completed(retain=10, remember=1000) == 2  # newest kept as order
        # once the event ids are forgotten, so is the order
        clock.advance(2000)
        assert await q.prune_completed(retain=10, remember=1000) == 0
        late = change(T0 + 20, seq=10)
        await q.append_many([late])
        assert await deliver_all(q) == [late.event_id]
    finally:
        await q.close()


# --- superseded as the newer change is stored (sql.supersede_older) ---------------------------


async def test_storing_a_newer_change_supersedes_older_pending_rows_at_once(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    """Before any claim: the older rows are superseded, their passwords gone, and
    ``max_pending`` counts only what will be sent."""
    older = [change(T0 + i, seq=i) for i in range(3)]
    bob = change(T0, seq=0, account="bob")
    newest = change(T0 + 9, seq=9)
    q = await open_queue(db_path, keys, clock)
    try:
        for c in (*older, bob):
            await q.append_many([c])
        assert q.pending_changes == 2  # older[2] and bob
        await q.append_many([newest])
        assert q.pending_changes == 2  # newest and bob
        with sqlite3.connect(db_path) as conn:
            held = {
                bytes(e): p is not None
                for e, p in conn.execute("SELECT event_id, password_sealed FROM changes")
            }
        assert [held[c.event_id] for c in older] == [False, False, False]
        assert held[newest.event_id] and held[bob.event_id]
        assert {e: states(db_path)[e] for e in (c.event_id for c in older)} == dict.fromkeys(
            (c.event_id for c in older), "superseded"
        )
        assert sorted(await deliver_all(q)) == sorted([newest.event_id, bob.event_id])
    finally:
        await q.close()


async def test_one_batch_keeps_only_each_accounts_newest(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    """Source order, not the order inside the batch, decides which one stays."""
    batch = [change(T0 + 30, seq=3), change(T0 + 50, seq=5), change(T0 + 40, seq=4)]
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many(batch)
        assert q.pending_changes == 1
        assert await deliver_all(q) == [batch[1].event_id]
    finally:
        await q.close()
    assert [states(db_path)[c.event_id] for c in batch] == ["superseded", "delivered", "superseded"]


async def test_a_row_in_flight_is_not_superseded_by_a_newer_arrival(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    """A delivery under way finishes; the newer change goes out after it."""
    first, second = change(T0 + 1, seq=1), change(T0 + 2, seq=2)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([first])
        (claim,) = (await q.claim("only", 10)).claims
        await q.append_many([second])
        assert states(db_path)[first.event_id] == "in_flight"
        await q.record(
            claim, Decision(DeliveryState.DELIVERED, 1, 0, None, None, ""), "delivered", ""
        )
        assert await deliver_all(q) == [second.event_id]
    finally:
        await q.close()


async def test_an_older_arrival_supersedes_nothing_newer(
    db_path: Path, keys: FileKeyProvider, clock: FakeClock
) -> None:
    """The spool path: the older change is stored pending and superseded when claimed;
    the newer one is untouched by its arrival."""
    newer, older = change(T0 + 50, seq=11), change(T0 + 10, seq=10)
    q = await open_queue(db_path, keys, clock)
    try:
        await q.append_many([newer])
        await q.append_many([older])
        assert states(db_path) == {newer.event_id: "pending", older.event_id: "pending"}
    finally:
        await q.close()
