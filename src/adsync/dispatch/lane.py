"""One backend's lane: claims its due deliveries in bulk, runs them, records their outcomes.

A lane has its own concurrency and never waits on another lane. It keeps a window
of claimed rows (in_flight in the queue, not started yet), refilled by one claim
transaction when it runs low, so its ``concurrency`` slots are fed from memory the
moment one frees up; outcomes are recorded in batches (``outcomes.py``). It wakes
when the queue commits new work or one of its deliveries finishes, and otherwise
sleeps until its earliest scheduled retry (at most ``idle_poll``, so work added
by another process, such as ``adsync queue retry``, is seen too).

Per-account order and supersede stay the queue's rules: a claimed row is in_flight,
so no other row of its account is claimed until its outcome is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog

from adsync.clock import Clock
from adsync.directory.gate import DeliveryGate
from adsync.dispatch.outcomes import OutcomeBatcher
from adsync.dispatch.retry import decide
from adsync.plugin import Backend, BackendConfig, Outcome, OutcomeKind
from adsync.queue.models import Attempt, Claim, ClaimBatch, DeliveryState
from adsync.queue.store import Queue
from adsync.secret import scrub

log = structlog.get_logger("adsync.dispatch")

_NOT_SENT = frozenset({OutcomeKind.SKIPPED, OutcomeKind.SUPERSEDED})  # the gate's verdicts


class LaneState(NamedTuple):
    """What status, health and metrics show of a lane."""

    running: bool  # its loop runs (False once stopped, or if it died)
    in_flight: int  # deliveries running now (their outcome not recorded yet)


class Lane:
    def __init__(
        self,
        queue: Queue,
        name: str,
        backend: Backend[Any],
        config: BackendConfig,
        clock: Clock,
        *,
        random: Callable[[], float],
        idle_poll: float,
        gate: DeliveryGate | None = None,
    ) -> None:
        self.queue = queue
        self.gate = gate  # scope and stale-password checks before each attempt
        self.name = name
        self.backend = backend
        self.config = config
        self.clock = clock
        self._random = random
        self._idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._stopping = False
        self._window: deque[Claim] = deque()  # claimed, not started
        self._posting = 0  # deliveries between start and outcome: the concurrency slots
        self._inflight: dict[int, asyncio.Task[None]] = {}  # started, outcome not recorded
        self._outcomes = OutcomeBatcher(queue.record_many)
        self._grown = 0  # window rows above the base, one per delivery in a row (window_size)
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0  # attempts finished (for tests and metrics)
        # The last outcome marked misconfigured (reason, at), until a delivery succeeds.
        self.config_problem: dict[str, Any] | None = None

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"adsync-lane-{self.name}")

    def wake(self) -> None:
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def state(self) -> LaneState:
        return LaneState(self.running, self.in_flight)

    async def stop_claiming(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def running_deliveries(self) -> list[asyncio.Task[None]]:
        return list(self._inflight.values())

    async def abandon(self) -> None:
        """Cancel deliveries still running after the grace; their rows go back to pending."""
        ids = list(self._inflight)
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.queue.release(self.name, ids)

    # --- the loop --------------------------------------------------------------------------

    @property
    def window_size(self) -> int:
        """Rows claimed ahead, refilled at half: two rounds of the slots (at least 8) while
        the target fails, growing by one per delivery up to four times that while it takes
        changes. A drain starved its slots 40% of the time waiting for claims with the small
        window; a large one kept while the target is down makes bursts of refused attempts
        that doubled the ACK latency of appends (bench/README.md, "Third pass", "Fourth pass").
        """
        base = max(8, 2 * self.config.concurrency)
        return base + min(self._grown, 3 * base)

    def _adapt_window(self, kind: OutcomeKind) -> None:
        """Grow on a delivery, back to the base on any answer but the gate's (not sent)."""
        if kind is OutcomeKind.DELIVERED:
            self._grown += 1
        elif kind not in _NOT_SENT:
            self._grown = 0

    async def _run(self) -> None:
        try:
            while not self._stopping:
                self._wake.clear()
                self._start_from_window()
                delay: float | None = None
                room = self.window_size - len(self._window)
                if self._needs_claim():
                    try:
                        batch = await self.queue.claim(self.name, room)
                    except Exception as exc:
                        log.error("lane_claim_failed", backend=self.name, error=type(exc).__name__)
                        await self._wait(self._idle_poll)
                        continue
                    self._window.extend(batch.claims)
                    self._start_from_window()
                    if len(batch.claims) < room:
                        if batch.full:
                            continue  # rows it took were unreadable (failed): claim again
                        delay = self._until_due(batch)
                        if delay <= 0:
                            continue  # a row came due during the claim's round trip
                if self._stopping:
                    break
                await self._wait(delay)
        finally:
            await self._release_window()

    def _until_due(self, batch: ClaimBatch) -> float:
        """Seconds until the next claim may find work, after one that found less than asked.

        Every row due at ``batch.now`` was taken, so ``next_due`` is later than that;
        by the clock's reading now it may have come (≤ 0: claim again at once).
        """
        if batch.next_due is None or batch.next_due <= batch.now:  # never spin
            return self._idle_poll
        return min(self._idle_poll, batch.next_due - self.clock.time())

    def _start_from_window(self) -> None:
        """Fill the free slots from the window (synchronous: no claim round trip)."""
        while self._window and self._posting < self.config.concurrency and not self._stopping:
            claim = self._window.popleft()
            self._posting += 1
            self._inflight[claim.change_id] = asyncio.create_task(
                self._deliver(claim), name=f"adsync-deliver-{self.name}"
            )

    async def _release_window(self) -> None:
        """Claimed rows never started go back to pending, uncounted."""
        ids = [claim.change_id for claim in self._window]
        self._window.clear()
        if ids:
            try:
                await self.queue.release(self.name, ids)
            except Exception as exc:  # they go back at the next start (crash recovery)
                log.error("lane_release_failed", backend=self.name, error=type(exc).__name__)

    async def _wait(self, delay: float | None) -> None:
        """Until woken, or ``delay`` seconds on the clock (None: until woken).

        The deadline is set now, not when the loop next runs: time that passes before
        then (a test moving its clock) shortens the sleep. A timer that sets the wake
        event, not a sleeping task: the lane waits like this once per change when
        changes trickle in.
        """
        if self._wake.is_set():
            return
        if delay is None:  # the common case while work flows: no timer
            await self._wake.wait()
            return
        timer = self.clock.call_later(delay, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    # --- one delivery ----------------------------------------------------------------------

    async def _admit(self, claim: Claim) -> Outcome | None:
        """The gate's verdict before the plugin is called: None sends the change; an outcome
        (skipped, superseded, unreachable) is recorded instead of an attempt."""
        if self.gate is None:
            return None
        try:
            return await self.gate.admit(self.config.scope, claim.change)
        except Exception as exc:  # a bug must not spin the row: retried, counted
            return Outcome.unreachable(f"directory check raised {type(exc).__name__}")

    async def _attempt(self, claim: Claim) -> Outcome:
        verdict = await self._admit(claim)
        if verdict is not None:
            return verdict
        timeout = self.config.timeout
        try:
            async with asyncio.timeout(timeout):
                outcome = await self.backend.deliver(claim.change)
        except TimeoutError:
            return Outcome.unreachable(f"no answer within {timeout:g}s")
        except Exception as exc:
            return Outcome.failed(f"plugin raised {type(exc).__name__}")
        if not isinstance(outcome, Outcome):
            return Outcome.failed(f"plugin returned {type(outcome).__name__}, not an Outcome")
        return outcome

    def _judge(self, claim: Claim, outcome: Outcome, now: float) -> Attempt:
        """The retry rules' decision on an outcome, as the row will record it."""
        decision = decide(self.config.retry, outcome, claim.counters, now, self._random)
        reason = outcome.reason
        # The net under the plugin rule "no password in a reason": stored and shown.
        # Scrubbing builds a matcher: only when there is text to scrub.
        if reason:
            reason = scrub(reason, claim.change.password)
        return Attempt(claim, decision, decision.outcome_label(outcome.kind.value),
                       decision.error(reason))  # fmt: skip

    async def _deliver(self, claim: Claim) -> None:
        try:
            try:
                outcome = await self._attempt(claim)
            finally:
                self._posting -= 1
                self._start_from_window()  # the slot is free: feed it before recording
                if self._needs_claim():  # and claim more meanwhile, not after the record
                    self._wake.set()
            now = self.clock.time()
            attempt = self._judge(claim, outcome, now)
            await self._outcomes.record(attempt)
            self._adapt_window(outcome.kind)
            if outcome.misconfigured:
                self.config_problem = {"reason": attempt.error, "at": now}
            elif outcome.kind is OutcomeKind.DELIVERED:
                self.config_problem = None
            self.delivered += 1
            fields: dict[str, Any] = {
                "backend": self.name,
                "event_id": claim.change.event_id_hex,
                "outcome": attempt.outcome,
                "state": attempt.decision.state.value,
                "attempts": attempt.decision.attempts,
            }
            if outcome.kind is OutcomeKind.DELIVERED:
                log.info("delivery", **fields)
            elif attempt.decision.state in (DeliveryState.SKIPPED, DeliveryState.SUPERSEDED):
                log.info("delivery", reason=attempt.error, **fields)  # the gate's verdict: not sent
            elif attempt.decision.state is DeliveryState.FAILED:
                log.error("delivery", reason=attempt.error, **fields)
            else:  # to be retried: unreachable, rejected, unknown user
                log.warning("delivery", reason=attempt.error, **fields)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the DB failed: give the row back (the attempt is not counted)
            log.error("delivery_record_failed", backend=self.name, error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await self.queue.release(self.name, [claim.change_id])
        finally:
            self._inflight.pop(claim.change_id, None)
            if self._needs_claim() or self._stopping:
                self._wake.set()

    def _needs_claim(self) -> bool:
        """The loop claims when half the window is free (a delivery ending with the window
        fuller than that needs no wake-up: the next slot was fed from memory)."""
        return self.window_size - len(self._window) >= self.window_size // 2
