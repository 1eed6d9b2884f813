"""One sqlite3 connection owned by one dedicated thread; the event loop sends it functions.

Why not aiosqlite: the group-commit writer needs to run a whole transaction
(BEGIN, a few statements with Python between them, COMMIT) in one hop to the
database thread, and aiosqlite's public API offers one hop per statement only;
its ``_execute`` is private. This is the same design (a queue of calls, one
thread, results posted back to the loop) in the one shape the queue needs:
``await db.run(fn)`` runs ``fn(connection)`` on the thread, calls in order.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")
_Call = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


def _close(conn: sqlite3.Connection) -> None:
    """The last call: the thread closes its connection and ends."""
    conn.close()


def _resolve(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


def _reject(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class SqliteThread:
    """Open with ``await SqliteThread.open(path)``; ``await close()`` when done."""

    def __init__(self, path: Path | str, loop: asyncio.AbstractEventLoop) -> None:
        self._path = str(path)
        self._loop = loop
        self._calls: SimpleQueue[_Call] = SimpleQueue()
        self._closed = False
        # A daemon thread: a queue nobody closed must not keep the process alive. What
        # it committed is on disk (synchronous=FULL); an unfinished transaction rolls
        # back at the next open, as after a crash.
        self._thread = threading.Thread(target=self._serve, name="adsync-sqlite", daemon=True)

    @classmethod
    async def open(cls, path: Path | str) -> SqliteThread:
        """Connect on the new thread, in autocommit mode (transactions are explicit)."""
        db = cls(path, asyncio.get_running_loop())
        db._thread.start()
        try:
            await db.run(lambda _: None)  # the connection is made by then
        except BaseException:
            await db.close()
            raise
        return db

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the thread after every call queued before it."""
        if self._closed:
            raise sqlite3.ProgrammingError("the queue database is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._calls.put((fn, fut))
        return await fut

    async def close(self) -> None:
        """Run what is queued, close the connection, end the thread."""
        if self._closed:
            return
        self._closed = True
        done: asyncio.Future[None] = self._loop.create_future()
        self._calls.put((_close, done))
        await done
        self._thread.join()  # it returns right after posting ``done``: no real wait

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        failed: Exception | None = None
        try:
            conn = sqlite3.connect(self._path, isolation_level=None)
        except Exception as exc:  # every call gets it, the first being open()'s
            failed = exc
        while True:
            fn, fut = self._calls.get()
            try:
                if conn is None:
                    if fn is _close:
                        self._post(_resolve, fut, None)
                        return
                    assert failed is not None
                    raise failed
                self._post(_resolve, fut, fn(conn))
            except BaseException as exc:  # the caller's error, raised where it awaits
                self._post(_reject, fut, exc)
            if fn is _close:
                return

    def _post(self, fn: Callable[[asyncio.Future[Any], Any], None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody waits for this result any more
            pass
