"""Group commit: everything that writes goes through one task and one transaction at a time.

Appends and other writes (claims, outcomes, operator actions) that arrive while
a transaction is running wait together and go into the next one: one hop to
the sqlite thread and one fsync for the whole batch. Each caller's future is
resolved only after its transaction's COMMIT returned.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from adsync.queue import sql
from adsync.queue.seal import SealedChange

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
RunOnThread = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class WriterClosed(RuntimeError):
    """The writer was closed; nothing more is accepted."""


_Append = tuple[Sequence[SealedChange], "asyncio.Future[list[bool]]", float]


class _OpFailed:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _transaction(
    conn: sqlite3.Connection,
    appends: Sequence[SealedChange],
    ops: Sequence[Op],
    now: float,
    expire_after: Mapping[str, float],
) -> tuple[sql.Inserted, list[Any]]:
    """One transaction on the sqlite thread. A sqlite error fails the whole batch."""
    with sql.transaction(conn):
        inserted = (
            sql.insert_changes(conn, appends, now, expire_after) if appends else _NOTHING_INSERTED
        )
        results: list[Any] = []
        for op in ops:
            try:
                with sql.savepoint(conn):
                    results.append(op(conn))
            except sqlite3.Error:
                raise
            except Exception as exc:  # a bug in one op must not fail the others
                results.append(_OpFailed(exc))
    return inserted, results


_NOTHING_INSERTED = sql.Inserted([], 0)


class GroupWriter:
    """Runs queued appends and ops in as few transactions as possible.

    Each hop to the sqlite thread runs one transaction with whatever was queued
    when the hop began there. Hops queue on the connection's thread in order
    with other users (reads), so a read issued after a write was queued sees it.
    """

    def __init__(
        self,
        run_on_thread: RunOnThread,
        clock_time: Callable[[], float],
        expire_after: Callable[[], Mapping[str, float]],
        *,
        max_batch: int = 4096,
        on_commit: Callable[[int, int], None] | None = None,
    ) -> None:
        self._run = run_on_thread
        self._time = clock_time
        self._expire_after = expire_after
        self._max_batch = max_batch
        self._on_commit = on_commit
        # Appended on the event loop, taken on the sqlite thread (deque ops are atomic).
        # Each append (one or more changes, one future) carries the clock's time when it
        # was queued (the fake clock of a test may move while the sqlite thread works;
        # the time must be the loop's view).
        self._appends: deque[_Append] = deque()
        self._queued = 0  # changes appended and not yet committed or failed (loop only)
        self._ops: deque[tuple[Op, asyncio.Future[Any]]] = deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0  # transactions committed (for tests and metrics)
        self.failed_batches = 0

    @property
    def queued_appends(self) -> int:
        """Changes appended whose transaction has not ended yet."""
        return self._queued

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run_loop(), name="adsync-queue-writer")

    async def append_many(self, items: Sequence[SealedChange]) -> list[bool]:
        """Per change, True when inserted, False for a known event id; one future and one
        wake-up for all, same transaction. Raises sqlite3.Error on failure."""
        if self._closed:
            raise WriterClosed("the queue is closing")
        fut: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._appends.append((items, fut, self._time()))
        self._queued += len(items)
        self._wake.set()
        return await fut

    async def op(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next transaction; resolves after its commit."""
        if self._closed:
            raise WriterClosed("the queue is closing")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.append((fn, fut))
        self._wake.set()
        return cast(T, await fut)

    async def _run_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._appends or self._ops:
                try:
                    await self._run(self._hop)
                except Exception as exc:  # the hop itself failed (connection closed?)
                    self._fail_queued(exc)
            if self._closed:
                return

    def _fail_queued(self, exc: Exception) -> None:
        while self._appends:
            items, fut, _ = self._appends.popleft()
            self._queued -= len(items)
            fut.set_exception(exc)
        while self._ops:
            self._ops.popleft()[1].set_exception(exc)

    def _hop(self, conn: sqlite3.Connection) -> None:
        """On the sqlite thread: one transaction with what is queued now."""
        loop = self._loop
        assert loop is not None
        n = self._max_batch
        if self._appends or self._ops:
            batch_appends: list[_Append] = []
            batch_ops: list[tuple[Op, asyncio.Future[Any]]] = []
            changes: list[SealedChange] = []
            while self._appends and len(changes) < n:
                batch_appends.append(self._appends.popleft())
                changes += batch_appends[-1][0]
            while self._ops and len(batch_ops) < n:
                batch_ops.append(self._ops.popleft())
            now = batch_appends[-1][2] if batch_appends else self._time()
            expire_after = dict(self._expire_after())
            try:
                inserted, results = _transaction(
                    conn,
                    changes,
                    [o for o, _ in batch_ops],
                    now,
                    expire_after,
                )
            except Exception as exc:
                loop.call_soon_threadsafe(self._failed, batch_appends, batch_ops, exc)
            else:
                loop.call_soon_threadsafe(
                    self._committed, batch_appends, batch_ops, inserted, results
                )

    def _failed(
        self,
        appends: list[_Append],
        ops: list[tuple[Op, asyncio.Future[Any]]],
        exc: Exception,
    ) -> None:
        self.failed_batches += 1
        self._queued -= sum(len(a[0]) for a in appends)
        for fut in (*(a[1] for a in appends), *(o[1] for o in ops)):
            if not fut.done():
                fut.set_exception(exc)

    def _committed(
        self,
        appends: list[_Append],
        ops: list[tuple[Op, asyncio.Future[Any]]],
        stored: sql.Inserted,
        results: list[Any],
    ) -> None:
        self.commits += 1
        inserted = stored.flags
        start = 0
        for items, fut, _t in appends:
            end = start + len(items)
            self._queued -= len(items)
            if not fut.done():
                fut.set_result(inserted[start:end])
            start = end
        if start != len(inserted):
            raise AssertionError("one insert flag per appended change")
        for (_, ofut), result in zip(ops, results, strict=True):
            if ofut.done():
                continue
            if isinstance(result, _OpFailed):
                ofut.set_exception(result.exc)
            else:
                ofut.set_result(result)
        if self._on_commit is not None:
            self._on_commit(sum(inserted), stored.dropped)

    async def close(self) -> None:
        """Finish what was queued, then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
