"""The capture history: which password version this DC showed right after each change.

Written for every stored change (account hash, version, time; never a password),
read by the stale-password guard before each delivery and by ``adsync audit``.
The lookup runs after the ACK, so a source never waits for the directory; a
delivery of a change whose capture is still being recorded waits for it (within
the gate's budget).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from adsync.clock import Clock
from adsync.directory.audit import HISTORY_RETENTION
from adsync.directory.client import DirectoryClient, DirectoryError
from adsync.directory.metadata import VersionKind
from adsync.plugin import Change
from adsync.queue import sql

if TYPE_CHECKING:
    from adsync.queue.store import Queue

log = structlog.get_logger("adsync.directory")

Captured = tuple[int, VersionKind] | None
_REMEMBER = 10_000  # recent captures kept in memory; older ones are read from the queue


class CaptureBook:
    def __init__(self, queue: Queue, directory: DirectoryClient | None, clock: Clock) -> None:
        self._queue = queue
        self._directory = directory
        self._clock = clock
        self._recent: OrderedDict[bytes, Captured] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[Captured]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_prune = float("-inf")

    def account_hash(self, account: str) -> bytes:
        """The history's account key: keyed hash of the name alone (one domain per DC)."""
        return self._queue.sealer.account_hash("", account)

    def expect(self, changes: Sequence[Change]) -> None:
        """Called by the intake before ``changes`` are stored: a lane that claims one before
        its capture is recorded waits for it instead of skipping the guard."""
        loop = asyncio.get_running_loop()
        for change in changes:
            if change.event_id not in self._pending:
                self._pending[change.event_id] = loop.create_future()

    def on_stored(self, changes: Sequence[Change], stored: Sequence[bool] | None = None) -> None:
        """Called by the intake after the commit; ``stored[i]`` False: not stored now
        (a duplicate or busy), nothing to record for it."""
        flags = list(stored) if stored is not None else [True] * len(changes)
        fresh = [c for c, ok in zip(changes, flags, strict=True) if ok]
        for change, ok in zip(changes, flags, strict=True):
            if not ok:
                fut = self._pending.pop(change.event_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)  # its earlier capture (if any) is in the history
        if not fresh:
            return
        self.expect(fresh)
        if self._directory is not None:
            for change in fresh:
                self._directory.forget(change.account)
        # Only what the record needs: the task must not keep a password alive (every live
        # Secret costs the log redaction, and a backlog of captures would hold thousands).
        task = asyncio.ensure_future(self._record([(c.event_id, c.account) for c in fresh]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, changes: list[tuple[bytes, str]]) -> None:
        """Record (event id, account) pairs: the version the directory shows now, if any."""
        versions: dict[bytes, Captured] = {}
        if self._directory is not None:
            found = await asyncio.gather(
                *(self._directory.lookup(account, fresh=True) for _, account in changes),
                return_exceptions=True,
            )
            for (event_id, _), record in zip(changes, found, strict=True):
                if isinstance(record, DirectoryError):
                    log.warning("capture_version_unknown", reason=str(record))
                elif isinstance(record, BaseException):
                    log.error("capture_version_failed", error=type(record).__name__)
                elif record.version is not None:
                    versions[event_id] = (record.version.value, record.version.kind)
        now = self._clock.time()
        rows = []
        for event_id, account in changes:
            v = versions.get(event_id)
            rows.append(
                sql.CaptureRow(
                    event_id,
                    self.account_hash(account),
                    None if v is None else v[0],
                    None if v is None else v[1].value,
                    now,
                )
            )
        prune_before = now - HISTORY_RETENTION if now - self._last_prune > 3600 else None
        if prune_before is not None:
            self._last_prune = now

        def write(conn: sqlite3.Connection) -> None:
            sql.insert_captures(conn, rows)
            if prune_before is not None:
                sql.prune_captures(conn, prune_before)

        try:
            await self._queue.write(write)
        except Exception as exc:
            log.error("capture_history_write_failed", error=type(exc).__name__)
        for event_id, _ in changes:
            self._remember(event_id, versions.get(event_id))
            fut = self._pending.pop(event_id, None)
            if fut is not None and not fut.done():
                fut.set_result(versions.get(event_id))

    def _remember(self, event_id: bytes, captured: Captured) -> None:
        self._recent[event_id] = captured
        self._recent.move_to_end(event_id)
        while len(self._recent) > _REMEMBER:
            self._recent.popitem(last=False)

    async def captured(self, event_id: bytes) -> Captured:
        """The version recorded at capture, or None (unknown: the guard does not apply)."""
        if event_id in self._recent:
            return self._recent[event_id]
        pending = self._pending.get(event_id)
        if pending is not None:
            result = await asyncio.shield(pending)
            if result is not None or event_id in self._recent:
                return result
        row = await self._queue.read(lambda conn: sql.capture_of(conn, event_id))
        if row is None:
            return None  # not remembered: a capture recorded later is still found
        result = None
        if row.pwd_version is not None and row.version_kind:
            result = (row.pwd_version, VersionKind(row.version_kind))
        self._remember(event_id, result)
        return result

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: S110 - closing
                pass


__all__ = ["CaptureBook", "Captured"]
