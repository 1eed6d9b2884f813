"""The lane's batches: a claim window ahead of the slots, outcomes recorded together, and
the rules of order and supersede across a window's boundaries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from adsync.clock import FakeClock
from adsync.dispatch.dispatcher import Dispatcher
from adsync.dispatch.lane import Lane
from adsync.plugin import Change, Outcome
from adsync.queue.models import Attempt, ClaimBatch, DeliveryState

from .test_dispatcher import (
    Cleanup,
    FakeBackend,
    OpenQueue,
    config,
    eventually,
    eventually_state,
    make_change,
    row,
    start,
)


async def _sends_only_each_accounts_newest(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup, *, newest_first: bool
) -> None:
    fake = FakeBackend("fake", config(concurrency=2))
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    accounts = [f"user{i}" for i in range(7)]
    changes = [make_change(accounts[i % 7]) for i in range(30)]  # 4-5 changes per account
    for change in reversed(changes) if newest_first else changes:
        await queue.append_many([change])
    newest = {c.account: c for c in changes}
    dispatcher = Dispatcher(queue, {"fake": (fake, fake.config)}, clock, random=lambda: 0.5)
    lane = dispatcher.lanes["fake"]
    assert lane.window_size >= len(accounts)  # one claim takes every account at once
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    for change in newest.values():
        await eventually_state(queue, change, DeliveryState.DELIVERED)
    for change in changes:
        if newest[change.account] is not change:
            await eventually_state(queue, change, DeliveryState.SUPERSEDED)
            info = await row(queue, change)
            assert info.attempts == 0 and not info.password_held
    assert sorted(c[1] for c in fake.calls) == sorted(c.event_id for c in newest.values())
    assert fake.max_active <= 2 and fake.max_active_per_account == 1


async def test_changes_queued_in_source_order_send_only_each_accounts_newest(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """Everything is queued before the lane runs; each change supersedes its account's
    older pending ones as it is stored, so the first window holds only the newest."""
    await _sends_only_each_accounts_newest(open_queue, clock, cleanup, newest_first=False)


async def test_a_claim_window_spanning_supersedes_sends_only_each_accounts_newest(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """Changes that arrive newest first (a spool replayed late) supersede nothing as they
    are stored: the claim windows span several changes per account, the newest of each
    is sent first and every older one is superseded when a claim reaches it."""
    await _sends_only_each_accounts_newest(open_queue, clock, cleanup, newest_first=True)


async def test_a_newer_change_arriving_while_the_older_waits_in_the_window_goes_after_it(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """A claimed row waits in the window (its account is in flight there); a newer change
    of that account is not claimed before the older one's outcome is recorded."""
    fake = FakeBackend("fake", config(concurrency=1))
    fake.gate = asyncio.Event()
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    a1, b1, b2 = make_change("alice"), make_change("bob"), make_change("bob")
    await queue.append_many([a1, b1])
    await eventually(lambda: fake.active == 1, "a1 posting, b1 in the window")
    assert (await row(queue, b1)).state is DeliveryState.IN_FLIGHT  # claimed ahead
    await queue.append_many([b2])
    fake.gate.set()
    await eventually_state(queue, b2, DeliveryState.DELIVERED)
    assert [c[1] for c in fake.calls] == [a1.event_id, b1.event_id, b2.event_id]
    assert (await row(queue, b1)).state is DeliveryState.DELIVERED


async def test_outcomes_that_finish_together_share_a_record_transaction(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(concurrency=8))
    fake.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    changes = [make_change(f"user{i}") for i in range(8)]
    await queue.append_many(changes)
    await eventually(lambda: fake.active == 8, "eight posting")
    lane = dispatcher.lanes["fake"]
    fake.gate.set()  # all eight answer in the same tick
    for change in changes:
        await eventually_state(queue, change, DeliveryState.DELIVERED)
    assert lane.delivered == 8
    assert lane._outcomes.batches <= 2  # the first outcome's batch, then all the others


async def test_stop_gives_back_the_rows_claimed_ahead_uncounted(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(concurrency=1))
    fake.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    changes = [make_change(f"user{i}") for i in range(5)]
    await queue.append_many(changes)
    await eventually(lambda: fake.active == 1, "one posting, four in the window")
    await dispatcher.stop(0)
    for change in changes:
        info = await row(queue, change)
        assert info.state is DeliveryState.PENDING and info.attempts == 0
    assert len(fake.calls) == 1


async def test_a_retry_due_during_the_claims_round_trip_is_claimed_at_once(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """``next_due`` is later than the claim's own time, but the clock moved while the
    claim was on the sqlite thread: the lane claims again now, not after ``idle_poll``."""
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    fake = FakeBackend("fake", config())
    lane = Lane(queue, "fake", fake, fake.config, clock, random=lambda: 0.5, idle_poll=5.0)
    now = clock.time()
    batch = ClaimBatch([], next_due=now + 1.0, finished=0, now=now)
    assert lane._until_due(batch) == 1.0
    clock.advance(2.0)  # the round trip took longer than the wait for the row
    assert lane._until_due(batch) <= 0
    # Nothing due later than the claim's time: never spin.
    assert lane._until_due(ClaimBatch([], next_due=now, finished=0, now=now)) == 5.0
    assert lane._until_due(ClaimBatch([], next_due=None, finished=0, now=now)) == 5.0


async def test_the_lanes_sleep_counts_from_when_it_was_asked_for(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """The clock moves after the lane decided to sleep 5 s but before the sleeping task
    first ran: the sleep ends on time, it does not start counting late."""
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    fake = FakeBackend("fake", config())
    lane = Lane(queue, "fake", fake, fake.config, clock, random=lambda: 0.5, idle_poll=60.0)
    waiting = asyncio.create_task(lane._wait(5.0))
    await asyncio.sleep(0)  # _wait ran and created its sleep; the sleep has not run yet
    clock.advance(5.0)
    await eventually(waiting.done, "the sleep to end")


async def test_a_full_claim_of_unreadable_rows_is_followed_by_another_at_once(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """A claim that took all it asked for reads no next due time; if every row it took was
    unreadable (failed), the lane claims again at once rather than sleeping its poll
    (the fake clock never moves here)."""
    fake = FakeBackend("fake", config(concurrency=1))
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    dispatcher = Dispatcher(queue, {"fake": (fake, fake.config)}, clock, random=lambda: 0.5)
    broken = [make_change(f"user{i}") for i in range(dispatcher.lanes["fake"].window_size)]
    await queue.append_many(broken)
    await queue.write(lambda c: c.execute("UPDATE changes SET password_sealed = x'00'"))
    readable = make_change("last")
    await queue.append_many([readable])
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    await eventually_state(queue, readable, DeliveryState.DELIVERED)
    assert [c[1] for c in fake.calls] == [readable.event_id]
    assert {(await row(queue, c)).state for c in broken} == {DeliveryState.FAILED}


async def test_the_window_grows_while_the_target_takes_changes_and_shrinks_when_it_fails(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """Each delivery adds a row to the window (up to four times its base); any other answer
    from the target brings it back to the base, so a target that is down is attempted in
    small bursts (bench/README.md, "Fourth pass")."""
    answers: list[Outcome] = []

    async def script(change: Change) -> Outcome:
        return answers.pop(0) if answers else Outcome.delivered()

    fake = FakeBackend("fake", config(concurrency=1), script)
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    lane = dispatcher.lanes["fake"]
    base = lane.window_size
    assert base == 8
    first = [make_change(f"user{i}") for i in range(5)]
    await queue.append_many(first)
    await eventually(lambda: lane.delivered == 5, "five deliveries")
    assert lane.window_size == base + 5
    answers.append(Outcome.unreachable("HTTP 503"))
    await queue.append_many([make_change("down")])
    await eventually(lambda: lane.delivered == 6, "a refused attempt")
    assert lane.window_size == base
    more = [make_change(f"more{i}") for i in range(40)]
    await queue.append_many(more)
    await eventually(lambda: lane.delivered == 46, "forty more deliveries")
    assert lane.window_size == 4 * base


async def test_the_window_is_refilled_while_outcomes_wait_for_their_record(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """A freed slot takes the next claimed row at once and, when that leaves the window
    half empty, wakes the lane to claim more: the claim does not wait for the outcomes'
    record transaction (a drain had its slots idle while claims waited for records)."""
    fake = FakeBackend("fake", config(concurrency=1))
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    records_may_finish = asyncio.Event()
    record_many = queue.record_many

    async def held_record_many(attempts: Sequence[Attempt]) -> None:
        await records_may_finish.wait()
        await record_many(attempts)

    queue.record_many = held_record_many  # type: ignore[method-assign]
    changes = [make_change(f"user{i}") for i in range(20)]
    await queue.append_many(changes)
    dispatcher = Dispatcher(queue, {"fake": (fake, fake.config)}, clock, random=lambda: 0.5)
    lane = dispatcher.lanes["fake"]
    assert lane.window_size == 8  # the window stays at its base: no outcome is recorded
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    await eventually(lambda: len(fake.calls) == 20, "every change sent, none recorded")
    assert lane.delivered == 0
    records_may_finish.set()
    for change in changes:
        await eventually_state(queue, change, DeliveryState.DELIVERED)
