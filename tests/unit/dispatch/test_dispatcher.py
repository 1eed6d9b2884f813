"""The dispatcher against a real queue file, a fake clock and an in-process fake backend."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from adsync.clock import FakeClock
from adsync.dispatch.dispatcher import Dispatcher
from adsync.plugin import Backend, BackendConfig, BackoffConfig, Change, Outcome, RetryConfig
from adsync.queue.models import DeliveryInfo, DeliveryState
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

_counter = itertools.count(1)

Script = Callable[[Change], Awaitable[Outcome]]


def digest(secret: Secret) -> str:
    return hashlib.sha256(secret.reveal_bytes()).hexdigest()


class FakeBackend(Backend[BackendConfig]):
    """Records what it was sent (digests, never values) and answers from a script."""

    def __init__(self, name: str, config: BackendConfig, script: Script | None = None) -> None:
        super().__init__(name, config)
        self.script = script
        self.calls: list[tuple[str, bytes, str]] = []  # (account, event_id, sha256(password))
        self.active_by_account: dict[str, int] = {}
        self.max_active_per_account = 0
        self.active = 0
        self.max_active = 0
        self.gate: asyncio.Event | None = None

    async def deliver(self, change: Change) -> Outcome:
        self.calls.append((change.account, change.event_id, digest(change.password)))
        acc = change.account
        self.active += 1
        self.active_by_account[acc] = self.active_by_account.get(acc, 0) + 1
        self.max_active = max(self.max_active, self.active)
        self.max_active_per_account = max(self.max_active_per_account, self.active_by_account[acc])
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.script is None:
                return Outcome.delivered()
            return await self.script(change)
        finally:
            self.active -= 1
            self.active_by_account[acc] -= 1


def make_change(account: str = "alice", domain: str = "ADSYNC") -> Change:
    n = next(_counter)
    pw = REGISTRY.password(f"Dispatch-Pässwort-{n:05d}-✓")
    return Change(
        event_id=os.urandom(16),
        account=account,
        password=Secret(pw),
        changed_at_ms=1_700_000_000_000 + n,
        domain=domain,
    )


async def eventually(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Wait (real time, generous deadline) for something the dispatcher does in background."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


OpenQueue = Callable[[Sequence[str]], Awaitable[Queue]]
Cleanup = list[Callable[[], Awaitable[None]]]


def config(
    *,
    concurrency: int = 4,
    timeout: float = 10.0,
    initial: float = 5.0,
    factor: float = 2.0,
    max_rejections: int = 5,
    grace: float = 3600.0,
    expire_after: float = 7 * 86400.0,
) -> BackendConfig:
    return BackendConfig(
        type="fake",
        concurrency=concurrency,
        timeout=timeout,
        retry=RetryConfig(
            backoff=BackoffConfig(initial=initial, max=600, factor=factor, jitter=0.2),
            max_rejections=max_rejections,
            unknown_user_grace=grace,
            expire_after=expire_after,
        ),
    )


def always(outcome: Outcome) -> Script:
    async def script(change: Change) -> Outcome:
        return outcome

    return script


async def start(
    open_queue: OpenQueue,
    clock: FakeClock,
    cleanup: Cleanup,
    backends: dict[str, FakeBackend],
) -> tuple[Queue, Dispatcher]:
    queue = await open_queue(list(backends))
    cleanup.append(queue.close)
    lanes: dict[str, tuple[Any, BackendConfig]] = {n: (b, b.config) for n, b in backends.items()}
    dispatcher = Dispatcher(queue, lanes, clock, random=lambda: 0.5, idle_poll=5.0)
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    return queue, dispatcher


async def row(queue: Queue, change: Change, backend: str = "fake") -> DeliveryInfo:
    infos = await queue.list_deliveries(backend=backend, limit=1000)
    return next(i for i in infos if i.event_id == change.event_id.hex())


async def eventually_state(
    queue: Queue, change: Change, state: DeliveryState, backend: str = "fake"
) -> DeliveryInfo:
    found: list[DeliveryInfo] = []

    async def check() -> bool:
        info = await row(queue, change, backend)
        found[:] = [info]
        return info.state is state

    for _ in range(2000):
        if await check():
            return found[0]
        await asyncio.sleep(0.005)
    raise AssertionError(f"{backend} row stayed {found[0].state if found else '?'}, not {state}")


async def settled(queue: Queue, change: Change, attempts: int) -> DeliveryInfo:
    """Wait until attempt number ``attempts`` is recorded and the row waits for a retry."""
    for _ in range(2000):
        info = await row(queue, change)
        if info.attempts == attempts and info.state is DeliveryState.PENDING:
            return info
        await asyncio.sleep(0.005)
    raise AssertionError(f"attempt {attempts} was not recorded")


async def asleep_for(clock: FakeClock, seconds: float) -> None:
    """Wait until the lane sleeps on the clock for exactly ``seconds`` (its next retry)."""
    await eventually(
        lambda: clock.next_wakeup() == pytest.approx(seconds), f"a sleep of {seconds}s"
    )


# --- each outcome's rule ---------------------------------------------------------------------


async def test_delivered_row_is_done_and_password_dropped(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    info = await eventually_state(queue, change, DeliveryState.DELIVERED)
    assert info.attempts == 1 and not info.password_held
    assert fake.calls == [("alice", change.event_id, digest(change.password))]


async def test_lane_wakes_on_append_without_the_clock_moving(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    await asleep_for(clock, 5.0)  # idle: sleeping its idle_poll
    change = make_change()
    await queue.append_many([change])
    await eventually_state(queue, change, DeliveryState.DELIVERED)
    assert clock.time() == FakeClock().time()


async def test_rejected_is_retried_with_backoff_then_failed_after_max_rejections(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(max_rejections=1), always(Outcome.rejected("too weak")))
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    t0 = clock.time()
    await queue.append_many([change])
    info = await settled(queue, change, 1)
    assert (info.attempts, info.rejections, info.next_attempt_at) == (1, 1, t0 + 5)
    await asleep_for(clock, 5.0)  # the lane sleeps until the retry, then the clock moves
    clock.advance(4)
    await asleep_for(clock, 1.0)
    assert len(fake.calls) == 1  # not before its time
    clock.advance(1)
    info = await eventually_state(queue, change, DeliveryState.FAILED)
    assert len(fake.calls) == 2
    assert info.last_outcome == "rejected"
    assert info.last_error == "rejected 2 times (max_rejections 1): too weak"
    assert not info.password_held


async def test_unreachable_is_retried_and_never_counted(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend(
        "fake", config(max_rejections=0, factor=1), always(Outcome.unreachable("503"))
    )
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    for n in range(1, 6):
        await settled(queue, change, n)
        await asleep_for(clock, 5.0)  # the lane sleeps until its retry, then the clock moves
        clock.advance(5)
    info = await settled(queue, change, 6)
    assert len(fake.calls) == 6
    assert (info.state, info.attempts, info.rejections) == (DeliveryState.PENDING, 6, 0)
    assert info.last_outcome == "unreachable" and info.password_held


async def test_unknown_user_retried_within_grace_then_failed(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(factor=1, grace=12), always(Outcome.unknown_user()))
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    # attempts at t=0, 5, 10, 12 (the grace's end): the last one fails it
    for n, step in ((1, 5.0), (2, 5.0), (3, 2.0)):
        await settled(queue, change, n)
        await asleep_for(clock, step)
        clock.advance(step)
    info = await eventually_state(queue, change, DeliveryState.FAILED)
    assert len(fake.calls) == 4
    assert info.last_outcome == "unknown_user"
    assert "unknown_user_grace" in (info.last_error or "")


async def test_failed_outcome_fails_at_once(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(), always(Outcome.failed("HTTP 400 bad request")))
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    info = await eventually_state(queue, change, DeliveryState.FAILED)
    assert (info.attempts, info.last_outcome, info.last_error) == (
        1,
        "failed",
        "HTTP 400 bad request",
    )


async def test_plugin_exception_is_failed_with_its_type_only(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    async def boom(change: Change) -> Outcome:
        raise RuntimeError(f"oops {change.password.reveal()}")

    fake = FakeBackend("fake", config(), boom)
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    info = await eventually_state(queue, change, DeliveryState.FAILED)
    assert info.last_error == "plugin raised RuntimeError"


async def test_timeout_is_unreachable(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    async def hang(change: Change) -> Outcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    fake = FakeBackend("fake", config(timeout=0.05), hang)
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    info = await settled(queue, change, 1)
    assert (info.state, info.last_outcome, info.last_error) == (
        DeliveryState.PENDING,
        "unreachable",
        "no answer within 0.05s",
    )


async def test_reason_is_scrubbed_of_the_password(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    async def leaky(change: Change) -> Outcome:
        return Outcome.failed(f"target said: {change.password.reveal()!r} is weak")

    fake = FakeBackend("fake", config(), leaky)
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    info = await eventually_state(queue, change, DeliveryState.FAILED)
    assert info.last_error == "target said: '***' is weak"


async def test_delivery_log_level_follows_the_outcome(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    """Delivered at info; an unreachable target (retried) at warning, with the reason;
    a final failure at error."""
    import structlog

    answers = {"ok": Outcome.delivered(), "down": Outcome.unreachable("HTTP 503")}
    answers["bad"] = Outcome.failed("HTTP 400")

    async def by_account(change: Change) -> Outcome:
        return answers[change.account]

    fake = FakeBackend("fake", config(), by_account)
    with structlog.testing.capture_logs() as logs:
        queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
        changes = {name: make_change(account=name) for name in answers}
        for change in changes.values():
            await queue.append_many([change])
        await eventually_state(queue, changes["ok"], DeliveryState.DELIVERED)
        await settled(queue, changes["down"], 1)
        await eventually_state(queue, changes["bad"], DeliveryState.FAILED)
        for _ in range(100):  # the log line follows the recorded row
            if sum(e["event"] == "delivery" for e in logs) == 3:
                break
            await asyncio.sleep(0.005)
    by_outcome = {e["outcome"]: e for e in logs if e["event"] == "delivery"}
    assert by_outcome["delivered"]["log_level"] == "info"
    assert by_outcome["unreachable"]["log_level"] == "warning"
    assert by_outcome["unreachable"]["reason"] == "HTTP 503"
    assert by_outcome["failed"]["log_level"] == "error"


async def test_retry_after_is_honoured(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(), always(Outcome.unreachable("429", retry_after=120)))
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    t0 = clock.time()
    await queue.append_many([change])
    assert (await settled(queue, change, 1)).next_attempt_at == t0 + 120
    for _ in range(23):  # the lane wakes every idle_poll (5 s) and finds nothing due
        clock.advance(5)
        await asleep_for(clock, 5.0)
    assert len(fake.calls) == 1  # 115 s later: still waiting
    clock.advance(5)
    await eventually(lambda: len(fake.calls) == 2, "the retry at 120 s")


async def test_expired_row_is_failed(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend(
        "fake", config(factor=1, expire_after=12), always(Outcome.unreachable("down"))
    )
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    for n, step in ((1, 5.0), (2, 5.0), (3, 2.0)):
        await settled(queue, change, n)
        await asleep_for(clock, step)
        clock.advance(step)
    info = await eventually_state(queue, change, DeliveryState.FAILED)
    assert info.last_outcome == "expired"
    assert len(fake.calls) == 3  # expiry ends it without another attempt
    assert not info.password_held


# --- order, supersede, concurrency ------------------------------------------------------------


async def test_per_account_order_and_supersede(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    gate = asyncio.Event()

    async def held_for_alice(change: Change) -> Outcome:
        if change.account == "alice":
            await gate.wait()
        return Outcome.delivered()

    fake.script = held_for_alice
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    a1, a2, a3, b1 = (make_change("alice"), make_change("alice"), make_change("alice"),
                      make_change("bob"))  # fmt: skip
    await queue.append_many([a1])
    await eventually(lambda: len(fake.calls) == 1, "a1 in flight")
    await queue.append_many([a2])
    await queue.append_many([a3])
    await queue.append_many([b1])
    await eventually_state(queue, b1, DeliveryState.DELIVERED)  # bob is not held up by alice
    assert [c[1] for c in fake.calls] == [a1.event_id, b1.event_id]
    gate.set()
    await eventually_state(queue, a3, DeliveryState.DELIVERED)
    superseded = await row(queue, a2)
    assert superseded.state is DeliveryState.SUPERSEDED and superseded.attempts == 0
    assert not superseded.password_held
    alice = [c[1] for c in fake.calls if c[0] == "alice"]
    assert alice == [a1.event_id, a3.event_id]
    assert fake.max_active_per_account == 1


async def test_older_change_waiting_for_retry_is_superseded_by_newer(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    answers = iter([Outcome.unreachable("down")])

    async def first_fails(change: Change) -> Outcome:
        return next(answers, Outcome.delivered())

    fake = FakeBackend("fake", config(), first_fails)
    queue, _ = await start(open_queue, clock, cleanup, {"fake": fake})
    old, new = make_change("carol"), make_change("Carol")  # same account, any case
    await queue.append_many([old])
    await settled(queue, old, 1)
    await queue.append_many([new])
    await eventually_state(queue, new, DeliveryState.DELIVERED)
    await asleep_for(clock, 5.0)  # the lane sleeps until the old row's retry, then time moves
    clock.advance(10)
    await eventually_state(queue, old, DeliveryState.SUPERSEDED)
    assert [c[1] for c in fake.calls] == [old.event_id, new.event_id]


async def test_concurrency_per_lane_and_one_in_flight_per_account(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config(concurrency=2))
    fake.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    changes = [make_change(f"user{i % 3}") for i in range(6)]
    for change in changes[:3]:
        await queue.append_many([change])
    await eventually(lambda: fake.active == 2, "two in flight")
    assert dispatcher.lanes["fake"].in_flight == 2
    for change in changes[3:]:
        await queue.append_many([change])
    fake.gate.set()
    for change in changes[3:]:
        await eventually_state(queue, change, DeliveryState.DELIVERED)
    assert fake.max_active == 2
    assert fake.max_active_per_account == 1


async def test_a_dead_backend_does_not_hold_up_another(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    slow = FakeBackend("slow", config())
    slow.gate = asyncio.Event()  # never opens
    fast = FakeBackend("fast", config())
    queue, dispatcher = await start(open_queue, clock, cleanup, {"slow": slow, "fast": fast})
    changes = [make_change(f"u{i}") for i in range(6)]
    for change in changes:
        await queue.append_many([change])
    for change in changes:
        await eventually_state(queue, change, DeliveryState.DELIVERED, backend="fast")
    await eventually(lambda: slow.active == 4, "the slow lane full")  # its concurrency, stuck
    await dispatcher.stop(0)
    states = {(await row(queue, c, "slow")).state for c in changes}
    assert states == {DeliveryState.PENDING}


# --- stopping and restarting ----------------------------------------------------------------


async def test_stop_lets_in_flight_finish_within_grace(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    fake.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    await eventually(lambda: fake.active == 1, "in flight")
    stopping = asyncio.create_task(dispatcher.stop(30))
    await asleep_for(clock, 30.0)  # the grace timer
    later = make_change("late")
    await queue.append_many([later])  # stored, but no longer claimed
    fake.gate.set()
    await stopping
    assert (await row(queue, change)).state is DeliveryState.DELIVERED
    assert (await row(queue, later)).state is DeliveryState.PENDING
    assert len(fake.calls) == 1


async def test_stop_past_grace_leaves_rows_pending_uncounted(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    fake.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    change = make_change()
    await queue.append_many([change])
    await eventually(lambda: fake.active == 1, "in flight")
    stopping = asyncio.create_task(dispatcher.stop(30))
    await asleep_for(clock, 30.0)
    clock.advance(30)
    await stopping
    info = await row(queue, change)
    assert (info.state, info.attempts, info.password_held) == (DeliveryState.PENDING, 0, True)


async def test_restart_resumes_pending_rows(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    stuck = FakeBackend("fake", config())
    stuck.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": stuck})
    changes = [make_change(f"r{i}") for i in range(3)]
    for change in changes:
        await queue.append_many([change])
    await eventually(lambda: stuck.active == 3, "all in flight")
    await dispatcher.stop(0)
    await queue.close()

    fresh = FakeBackend("fake", config())
    queue2, _ = await start(open_queue, clock, cleanup, {"fake": fresh})
    for change in changes:
        await eventually_state(queue2, change, DeliveryState.DELIVERED)
    assert sorted(c[2] for c in fresh.calls) == sorted(digest(c.password) for c in changes)


async def test_completed_changes_are_pruned_after_retention(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    dispatcher = Dispatcher(
        queue,
        {"fake": (fake, fake.config)},
        clock,
        random=lambda: 0.5,
        idle_poll=5.0,
        prune_every=3600,
        retain_completed=7200,
        remember_event_ids=86400,
    )
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    change = make_change()
    await queue.append_many([change])
    await eventually_state(queue, change, DeliveryState.DELIVERED)
    clock.advance(3600)  # first housekeeping: younger than the retention, kept
    await asyncio.sleep(0.05)
    assert len(await queue.list_deliveries()) == 1
    clock.advance(3600)
    await asyncio.sleep(0.05)
    clock.advance(3600)  # now older than 7200 s
    for _ in range(2000):
        if not await queue.list_deliveries():
            break
        await asyncio.sleep(0.005)
    assert await queue.list_deliveries() == []
    assert (await queue.append_many([change]))[0].status.value == "duplicate"


# --- lanes added and retired while running (config reload) ----------------------------------


async def test_an_added_lane_gets_the_dispatchers_idle_poll_and_random(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    queue = await open_queue(["fake"])
    cleanup.append(queue.close)
    dispatcher = Dispatcher(queue, {}, clock, random=lambda: 1.0, idle_poll=7.0)
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    fake = FakeBackend("fake", config(), always(Outcome.rejected("too weak")))
    dispatcher.add_lane("fake", fake, fake.config)
    await asleep_for(clock, 7.0)  # the injected idle_poll, not a default
    change = make_change()
    t0 = clock.time()
    await queue.append_many([change])
    info = await settled(queue, change, 1)
    # random() == 1.0 is the top of the jitter band: initial 5 s x (1 + 0.2)
    assert info.next_attempt_at == pytest.approx(t0 + 6.0)
    assert dispatcher.lane_states() == {"fake": (True, 0)}


async def test_add_lane_refuses_a_backend_that_already_has_one(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    fake = FakeBackend("fake", config())
    _, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    with pytest.raises(ValueError, match="already has a lane"):
        dispatcher.add_lane("fake", fake, fake.config)


async def test_retire_lane_waits_its_grace_on_the_injected_clock(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    stuck = FakeBackend("stuck", config())
    stuck.gate = asyncio.Event()  # never opens
    queue, dispatcher = await start(open_queue, clock, cleanup, {"stuck": stuck})
    change = make_change()
    await queue.append_many([change])
    await eventually(lambda: stuck.active == 1, "in flight")
    assert dispatcher.lane_states() == {"stuck": (True, 1)}
    retiring = asyncio.create_task(dispatcher.retire_lane("stuck", 30))
    await asleep_for(clock, 30.0)  # the grace, on the fake clock: no real time passes
    assert not retiring.done()
    assert dispatcher.lane_states() == {"stuck": (False, 1)}  # claims nothing more
    clock.advance(30)
    await retiring
    assert dispatcher.lane_states() == {}
    info = await row(queue, change, "stuck")
    assert (info.state, info.attempts, info.password_held) == (DeliveryState.PENDING, 0, True)


async def test_retiring_one_lane_leaves_the_others_running(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    gone = FakeBackend("gone", config())
    other = FakeBackend("other", config())
    queue, dispatcher = await start(open_queue, clock, cleanup, {"gone": gone, "other": other})
    await dispatcher.retire_lane("gone", 0)
    await dispatcher.retire_lane("never-had-one", 0)  # nothing to do
    change = make_change()
    await queue.append_many([change])
    await eventually_state(queue, change, DeliveryState.DELIVERED, backend="other")
    assert (await row(queue, change, "gone")).state is DeliveryState.PENDING
    assert gone.calls == []
    assert dispatcher.lane_states() == {"other": (True, 0)}


async def test_a_replaced_lane_takes_over_the_rows_of_the_retired_one(
    open_queue: OpenQueue, clock: FakeClock, cleanup: Cleanup
) -> None:
    old = FakeBackend("fake", config())
    old.gate = asyncio.Event()
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": old})
    change = make_change()
    await queue.append_many([change])
    await eventually(lambda: old.active == 1, "in flight")
    await dispatcher.retire_lane("fake", 0)
    new = FakeBackend("fake", config(concurrency=1))
    dispatcher.add_lane("fake", new, new.config)
    await eventually_state(queue, change, DeliveryState.DELIVERED)
    assert [c[1] for c in new.calls] == [change.event_id]
    assert dispatcher.lanes["fake"].backend is new
