"""The dispatcher: one lane per backend over the shared queue, and its stop with a grace."""

from __future__ import annotations

import asyncio
import contextlib
import random as _random
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import structlog

from adsync.clock import Clock
from adsync.directory.gate import DeliveryGate
from adsync.dispatch.lane import Lane, LaneState
from adsync.plugin import Backend, BackendConfig
from adsync.queue.store import Queue

log = structlog.get_logger("adsync.dispatch")


class Dispatcher:
    """Runs a lane per backend; a slow or dead backend holds up only its own lane."""

    def __init__(
        self,
        queue: Queue,
        lanes: Mapping[str, tuple[Backend[Any], BackendConfig]],
        clock: Clock,
        *,
        random: Callable[[], float] | None = None,
        idle_poll: float = 5.0,
        prune_every: float = 3600.0,
        retain_completed: float = 7 * 86400.0,
        remember_event_ids: float = 30 * 86400.0,
        gate: DeliveryGate | None = None,
    ) -> None:
        self.queue = queue
        self.gate = gate or DeliveryGate()  # built-in exclusions apply even without directory
        self.clock = clock
        self._random = random or _random.SystemRandom().random
        self._idle_poll = idle_poll
        self._lanes: dict[str, Lane] = {
            name: self._make_lane(name, backend, config)
            for name, (backend, config) in lanes.items()
        }
        self._unsubscribe: Callable[[], None] | None = None
        self._started = False
        self._prune_every = prune_every
        self._retain = retain_completed
        self._remember = remember_event_ids
        self._housekeeping: asyncio.Task[None] | None = None

    def _make_lane(self, name: str, backend: Backend[Any], config: BackendConfig) -> Lane:
        """Every lane, first or added by a reload, gets the clock, random and poll given here."""
        return Lane(
            self.queue,
            name,
            backend,
            config,
            self.clock,
            random=self._random,
            idle_poll=self._idle_poll,
            gate=self.gate,
        )

    @property
    def lanes(self) -> Mapping[str, Lane]:
        """The lanes by backend name (read-only: ``add_lane``/``retire_lane`` change them)."""
        return MappingProxyType(self._lanes)

    def lane_states(self) -> dict[str, LaneState]:
        return {name: lane.state() for name, lane in self._lanes.items()}

    def config_problems(self) -> dict[str, dict[str, Any]]:
        """Backends whose last problem was a configuration one (``Outcome.misconfigured``)."""
        return {n: lane.config_problem for n, lane in self._lanes.items() if lane.config_problem}

    async def start(self) -> None:
        for name, lane in self._lanes.items():
            self.queue.set_expire_after(name, lane.config.retry.expire_after)
        self._unsubscribe = self.queue.add_listener(self._wake_all)
        for lane in self._lanes.values():
            lane.start()
        self._housekeeping = asyncio.create_task(self._prune_loop(), name="adsync-prune")
        self._started = True

    async def _prune_loop(self) -> None:
        """Delete changes delivered long ago; their ids stay known as duplicates a while longer."""
        while True:
            await self.clock.sleep(self._prune_every)
            try:
                pruned = await self.queue.prune_completed(self._retain, self._remember)
            except Exception as exc:
                log.error("queue_prune_failed", error=type(exc).__name__)
                continue
            if pruned:
                log.info("queue_pruned", changes=pruned)

    def _wake_all(self) -> None:
        for lane in self._lanes.values():
            lane.wake()

    def add_lane(self, name: str, backend: Backend[Any], config: BackendConfig) -> None:
        """A lane for a backend added (or replaced) by a reload; it runs at once if we run."""
        if name in self._lanes:
            raise ValueError(f"backend {name} already has a lane; retire it first")
        lane = self._lanes[name] = self._make_lane(name, backend, config)
        if self._started:
            self.queue.set_expire_after(name, config.retry.expire_after)
            lane.start()
            lane.wake()

    async def retire_lane(self, name: str, grace: float) -> None:
        """Wind one lane down as ``stop`` winds them all down; the other lanes keep running."""
        lane = self._lanes.get(name)
        if lane is None:
            return
        await self._wind_down([lane], grace)
        if self._lanes.get(name) is lane:
            del self._lanes[name]

    async def stop(self, grace: float) -> None:
        """Claim nothing more; let running deliveries finish within ``grace`` seconds.

        Deliveries still running then are cancelled and their rows go back to
        pending (a restart sends them again: delivery is at-least-once).
        """
        if not self._started:
            return
        self._started = False
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self._wind_down(list(self._lanes.values()), grace)

    async def _wind_down(self, lanes: Sequence[Lane], grace: float) -> None:
        """Claim nothing more; wait up to ``grace`` seconds on the clock for running
        deliveries; cancel the rest, whose rows go back to pending uncounted."""
        await asyncio.gather(*(lane.stop_claiming() for lane in lanes))
        running = [t for lane in lanes for t in lane.running_deliveries()]
        if running:
            done_all = asyncio.ensure_future(asyncio.wait(running))
            timer = asyncio.ensure_future(self.clock.sleep(grace))
            try:
                await asyncio.wait({done_all, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                done_all.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await done_all
        for lane in lanes:
            if lane.in_flight:
                log.warning("dispatch_grace_over", backend=lane.name, abandoned=lane.in_flight)
                await lane.abandon()
