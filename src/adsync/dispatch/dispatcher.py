"""The dispatcher: one lane per backend over the shared queue, and its stop with a grace."""

from __future__ import annotations

import asyncio
import contextlib
import random as _random
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from adsync.clock import Clock
from adsync.dispatch.lane import Lane
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
    ) -> None:
        rnd = random or _random.SystemRandom().random
        self.queue = queue
        self.clock = clock
        self.lanes = {
            name: Lane(queue, name, backend, config, clock, random=rnd, idle_poll=idle_poll)
            for name, (backend, config) in lanes.items()
        }
        self._unsubscribe: Callable[[], None] | None = None
        self._started = False
        self._prune_every = prune_every
        self._retain = retain_completed
        self._remember = remember_event_ids
        self._housekeeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for name, lane in self.lanes.items():
            self.queue.set_expire_after(name, lane.config.retry.expire_after)
        self._unsubscribe = self.queue.add_listener(self._wake_all)
        for lane in self.lanes.values():
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
        for lane in self.lanes.values():
            lane.wake()

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
        await asyncio.gather(*(lane.stop_claiming() for lane in self.lanes.values()))
        running = [t for lane in self.lanes.values() for t in lane.running_deliveries()]
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
        for lane in self.lanes.values():
            if lane.in_flight:
                log.warning("dispatch_grace_over", backend=lane.name, abandoned=lane.in_flight)
                await lane.abandon()
