"""Time as a dependency: wall time for stored schedules, monotonic sleep for waiting.

Retry schedules are stored as wall-clock seconds (they must survive a restart);
waiting uses a monotonic sleep. Tests drive both with ``FakeClock``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> object: ...


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (what the queue stores)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for measuring waits)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (zero or negative: just yield)."""
        ...

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn`` on the running loop after ``seconds``, unless cancelled first: a
        timed wait without a task (the lane's idle wait, once per change at moderate rates)."""
        ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), fn)


class FakeClock:
    """A clock that moves only when a test calls ``advance``; sleepers wake in order."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._sleeper(seconds)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        """Counted in ``sleepers`` until it fires or is cancelled."""
        fut = self._sleeper(max(0.0, seconds))
        fut.add_done_callback(lambda f: None if f.cancelled() else fn())
        if seconds <= 0:
            fut.set_result(None)
        return fut

    def _sleeper(self, seconds: float) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        return fut

    @property
    def sleepers(self) -> int:
        """How many tasks wait on this clock now (cancelled waits are not counted)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    def next_wakeup(self) -> float | None:
        """Seconds until the earliest pending sleeper wakes, if any."""
        live = [deadline for deadline, _, fut in self._sleepers if not fut.done()]
        return (min(live) - self._mono) if live else None

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake every sleeper whose time has come."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
        self._mono += seconds
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
