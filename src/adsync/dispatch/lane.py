"""One backend's lane: claims its due deliveries, runs them, records their outcomes.

A lane has its own concurrency and never waits on another lane. It wakes when
the queue commits new work or one of its deliveries finishes, and otherwise
sleeps until its earliest scheduled retry (at most ``idle_poll``, so work added
by another process, such as ``adsync queue retry``, is seen too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog

from adsync.clock import Clock
from adsync.directory.gate import DeliveryGate
from adsync.dispatch.retry import decide
from adsync.plugin import Backend, BackendConfig, Outcome, OutcomeKind
from adsync.queue.models import Claim, DeliveryState
from adsync.queue.store import Queue
from adsync.secret import scrub

log = structlog.get_logger("adsync.dispatch")


class LaneState(NamedTuple):
    """What status, health and metrics show of a lane."""

    running: bool  # its loop runs (False once stopped, or if it died)
    in_flight: int  # deliveries running now


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
        self._inflight: dict[int, asyncio.Task[None]] = {}
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

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.config.concurrency - len(self._inflight)
            delay: float | None = None
            if free > 0:
                try:
                    batch = await self.queue.claim(self.name, free)
                except Exception as exc:
                    log.error("lane_claim_failed", backend=self.name, error=type(exc).__name__)
                    await self._wait(self._idle_poll)
                    continue
                for claim in batch.claims:
                    self._inflight[claim.change_id] = asyncio.create_task(
                        self._deliver(claim), name=f"adsync-deliver-{self.name}"
                    )
                if len(batch.claims) < free:
                    delay = self._idle_poll
                    if batch.next_due is not None:
                        delay = min(delay, batch.next_due - self.clock.time())
                    if delay <= 0 and not batch.claims and not batch.finished:
                        delay = self._idle_poll  # nothing claimable: never spin
                    elif delay <= 0:
                        continue
            if self._stopping:
                break
            await self._wait(delay)

    async def _wait(self, delay: float | None) -> None:
        """Until woken, or ``delay`` seconds on the clock (None: until woken)."""
        if self._wake.is_set():
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if delay is not None:
            tasks.add(asyncio.ensure_future(self.clock.sleep(delay)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()

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

    async def _deliver(self, claim: Claim) -> None:
        try:
            outcome = await self._attempt(claim)
            now = self.clock.time()
            decision = decide(self.config.retry, outcome, claim.counters, now, self._random)
            # The net under the plugin rule "no password in a reason": stored and shown.
            reason = decision.error(scrub(outcome.reason, claim.change.password))
            label = decision.outcome_label(outcome.kind.value)
            await self.queue.record(claim, decision, label, reason)
            if outcome.misconfigured:
                self.config_problem = {"reason": reason, "at": now}
            elif outcome.kind is OutcomeKind.DELIVERED:
                self.config_problem = None
            self.delivered += 1
            fields: dict[str, Any] = {
                "backend": self.name,
                "event_id": claim.change.event_id_hex,
                "outcome": label,
                "state": decision.state.value,
                "attempts": decision.attempts,
            }
            if outcome.kind is OutcomeKind.DELIVERED:
                log.info("delivery", **fields)
            elif decision.state in (DeliveryState.SKIPPED, DeliveryState.SUPERSEDED):
                log.info("delivery", reason=reason, **fields)  # the gate's verdict: not sent
            elif decision.state is DeliveryState.FAILED:
                log.error("delivery", reason=reason, **fields)
            else:  # to be retried: unreachable, rejected, unknown user
                log.warning("delivery", reason=reason, **fields)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the DB failed: give the row back (the attempt is not counted)
            log.error("delivery_record_failed", backend=self.name, error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await self.queue.release(self.name, [claim.change_id])
        finally:
            self._inflight.pop(claim.change_id, None)
            self._wake.set()
