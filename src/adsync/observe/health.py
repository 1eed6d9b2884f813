"""What ``/healthz`` answers: healthy when the queue takes writes and every lane runs.

The evaluation is pure; the checker runs the (I/O) write probe at most once per
``min_interval`` so a tight health poll cannot turn into a write load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    reasons: tuple[str, ...] = ()
    lanes: Mapping[str, bool] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "unhealthy",
            "reasons": list(self.reasons),
            "lanes": {name: ("running" if up else "stopped") for name, up in self.lanes.items()},
        }


def evaluate(
    *,
    queue_problem: str | None,
    lanes: Mapping[str, bool],
    stopping: bool,
    not_started: Mapping[str, str] | None = None,
) -> HealthReport:
    """Every reason that makes the daemon unhealthy, in a stable order.

    ``not_started``: backends whose plugin failed to start, and why (their lane is down).
    """
    not_started = not_started or {}
    reasons: list[str] = []
    if stopping:
        reasons.append("the daemon is stopping")
    if queue_problem is not None:
        reasons.append(f"queue not writable: {queue_problem}")
    for name in sorted(lanes):
        if name in not_started:
            reasons.append(f"backend {name} did not start: {not_started[name]}")
        elif not lanes[name]:
            reasons.append(f"lane {name} is not running")
    return HealthReport(not reasons, tuple(reasons), dict(lanes))


class WriteProbe:
    """Runs ``probe`` (None = writable, else why not), sharing one result per interval."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[str | None]],
        *,
        min_interval: float = 1.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._min_interval = min_interval
        self._now = now
        self._lock = asyncio.Lock()
        self._result: str | None = None
        self._at = float("-inf")

    async def check(self) -> str | None:
        async with self._lock:
            if self._now() - self._at >= self._min_interval:
                self._result = await self._probe()
                self._at = self._now()
            return self._result


__all__ = ["HealthReport", "WriteProbe", "evaluate"]
