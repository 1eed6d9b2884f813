"""Group commit: everything that writes goes through one task and one transaction at a time.

Appends and other writes (claims, outcomes, operator actions) that arrive while
a transaction is running wait together and go into the next one: one hop to
the sqlite thread and one fsync for the whole batch. Each caller's future is
resolved only after its transaction's COMMIT returned.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from adsync.queue import sql
from adsync.queue.seal import SealedChange

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
RunOnThread = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


class WriterClosed(RuntimeError):
    """The writer was closed; nothing more is accepted."""


@dataclass
class _Batch:
    appends: list[SealedChange]
    append_futs: list[asyncio.Future[bool]]
    ops: list[Op]
    op_futs: list[asyncio.Future[Any]]


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
) -> tuple[list[bool], list[Any]]:
    """One transaction on the sqlite thread. A sqlite error fails the whole batch."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        inserted = sql.insert_changes(conn, appends, now, expire_after) if appends else []
        results: list[Any] = []
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                results.append(op(conn))
            except sqlite3.Error:
                raise
            except Exception as exc:  # a bug in one op must not fail the others
                conn.execute("ROLLBACK TO op")
                results.append(_OpFailed(exc))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return inserted, results


class GroupWriter:
    def __init__(
        self,
        run_on_thread: RunOnThread,
        clock_time: Callable[[], float],
        expire_after: Callable[[], Mapping[str, float]],
        *,
        max_batch: int = 4096,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run_on_thread
        self._time = clock_time
        self._expire_after = expire_after
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._appends: list[SealedChange] = []
        self._append_futs: list[asyncio.Future[bool]] = []
        self._ops: list[Op] = []
        self._op_futs: list[asyncio.Future[Any]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed (for tests and metrics)
        self.failed_batches = 0

    @property
    def queued_appends(self) -> int:
        return len(self._appends)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="adsync-queue-writer")

    async def append(self, item: SealedChange) -> bool:
        """True when inserted, False for a known event id; raises sqlite3.Error on failure."""
        if self._closed:
            raise WriterClosed("the queue is closing")
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._appends.append(item)
        self._append_futs.append(fut)
        self._wake.set()
        return await fut

    async def op(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next transaction; resolves after its commit."""
        if self._closed:
            raise WriterClosed("the queue is closing")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.append(fn)
        self._op_futs.append(fut)
        self._wake.set()
        return cast(T, await fut)

    def _take(self) -> _Batch:
        n = self._max_batch
        batch = _Batch(self._appends[:n], self._append_futs[:n], self._ops[:n], self._op_futs[:n])
        del self._appends[:n], self._append_futs[:n], self._ops[:n], self._op_futs[:n]
        return batch

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._appends or self._ops:
                await self._commit(self._take())
            if self._closed:
                return

    async def _commit(self, batch: _Batch) -> None:
        now = self._time()
        expire_after = dict(self._expire_after())
        appends, ops = batch.appends, batch.ops
        try:
            inserted, results = await self._run(
                lambda conn: _transaction(conn, appends, ops, now, expire_after)
            )
        except Exception as exc:
            self.failed_batches += 1
            for fut in (*batch.append_futs, *batch.op_futs):
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.commits += 1
        for fut, flag in zip(batch.append_futs, inserted, strict=True):
            if not fut.done():
                fut.set_result(flag)
        for ofut, result in zip(batch.op_futs, results, strict=True):
            if ofut.done():
                continue
            if isinstance(result, _OpFailed):
                ofut.set_exception(result.exc)
            else:
                ofut.set_result(result)
        if self._on_commit is not None:
            self._on_commit(sum(inserted))

    async def close(self) -> None:
        """Finish what was queued, then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
