"""Group commit for outcomes: the attempts of a lane that finish together are recorded together.

An outcome waits for the record transaction running now (at most one per lane), then
goes with every other outcome that finished meanwhile into the next one: one
``Queue.record_many`` (one statement, one share of a commit) for all of them. Each
caller returns only after its outcome committed, so a delivery is "done" only once the
queue says so; a kill before that commit leaves the row in_flight, and the next start
sends it again (at-least-once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from adsync.queue.models import Attempt

RecordMany = Callable[[Sequence[Attempt]], Awaitable[None]]


class OutcomeBatcher:
    def __init__(self, record_many: RecordMany) -> None:
        self._record_many = record_many
        self._waiting: list[tuple[Attempt, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # record transactions asked for (for tests)

    async def record(self, attempt: Attempt) -> None:
        """Returns once ``attempt`` is committed; raises what ``record_many`` raised."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((attempt, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="adsync-record-outcomes")
        # A caller cancelled at stop cancels its own future only: the attempt stays in its
        # batch and is recorded with the others (a done future is never set again).
        await fut

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            self.batches += 1
            try:
                await self._record_many([attempt for attempt, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                        fut.exception()  # retrieved here too: its caller may be gone
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
