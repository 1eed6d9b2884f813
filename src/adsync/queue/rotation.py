"""Data-key rotation: add a key, re-seal old rows under it, retire the old key once unused.

How a rotation reaches the running daemon: ``adsync keys rotate`` adds a new
data key (wrapped by the master key) and marks it the only active one, in one
transaction. The daemon's :class:`KeyMaintainer` polls a tiny fingerprint of
the key table (ids and active flags) every second; when it changes it
unwraps the key table again and swaps the Sealer's keys, so new appends use
the new key from then on (the append path itself never reads the key table).
It then re-seals rows still on an older key, in small batches that go
through the group-commit writer (each batch is one transaction: a crash loses
nothing, the next start continues), and deletes an inactive key only when no
row uses it any more. When no daemon runs, the CLI takes the daemon's lock
and does the same work itself.

The functions below run on the sqlite thread inside a transaction opened by
their caller (their statements are in ``sql.py``); they see sealed bytes and
keys, never log either.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from adsync.queue import sql
from adsync.queue.errors import QueueError, SealError
from adsync.queue.models import KeyRow
from adsync.queue.seal import (
    COL_ACCOUNT,
    COL_GUID,
    COL_PASSWORD,
    PURPOSE_DATA,
    Sealer,
    new_key,
    unwrap_key,
    wrap_key,
)

if TYPE_CHECKING:
    from adsync.queue.store import Queue

log = structlog.get_logger("adsync.queue.keys")

RESEAL_BATCH = 200
POLL_INTERVAL = 1.0

# Statements the CLI runs through ``Queue.read``/``Queue.write``, under their rotation names.
KeyFingerprint = sql.KeyFingerprint
fingerprint = sql.fingerprint
key_rows = sql.key_rows
retire_unused = sql.retire_unused
rows_per_key = sql.rows_per_key


def inactive_data_keys(fp: KeyFingerprint) -> list[int]:
    return [kid for kid, purpose, active in fp if purpose == PURPOSE_DATA and not active]


def add_data_key(conn: sqlite3.Connection, master: bytes, now: float) -> int:
    """Add a new data key and make it the only active one; returns its id.

    The caller must have checked that ``master`` opens the existing keys: a key
    wrapped under another master key would make the queue unreadable.
    """
    key_id = sql.next_key_id(conn)
    wrapped = wrap_key(master, key_id, PURPOSE_DATA, new_key())
    sql.add_keys(conn, [(key_id, PURPOSE_DATA, wrapped)], now)
    sql.deactivate_others(conn, PURPOSE_DATA, key_id)
    return key_id


def verify_master(conn: sqlite3.Connection, master: bytes) -> None:
    """Raise SealError unless ``master`` unwraps every key in the table."""
    for key_id, purpose, wrapped, _active in sql.key_table(conn):
        unwrap_key(master, key_id, purpose, wrapped)


def rewrap_keys(conn: sqlite3.Connection, old_master: bytes, new_master: bytes) -> int:
    """Wrap every key under ``new_master`` (master-key rotation); returns keys rewrapped.

    All or nothing: the caller runs it in one transaction, and a key that does
    not open with ``old_master`` raises before anything is written.
    """
    updates = []
    for key_id, purpose, wrapped, _active in sql.key_table(conn):
        key = unwrap_key(old_master, key_id, purpose, wrapped)
        updates.append((key_id, wrap_key(new_master, key_id, purpose, key)))
    sql.set_wrapped(conn, updates)
    return len(updates)


@dataclass(frozen=True, slots=True)
class ResealBatch:
    resealed: int
    unreadable: list[bytes]  # event ids whose sealed columns do not open
    last_id: int  # the cursor for the next batch
    done: bool  # no row after ``last_id`` is on an old key


def reseal_batch(
    conn: sqlite3.Connection, sealer: Sealer, after_id: int, limit: int = RESEAL_BATCH
) -> ResealBatch:
    """Re-seal up to ``limit`` rows (id > ``after_id``) that are not on the sealer's active key.

    A row is rewritten only if it still has the key it was read with, so a
    concurrent writer can never be overwritten with stale bytes.
    """
    target = sealer.active_key_id
    rows = sql.rows_not_on_key(conn, target, after_id, limit)
    updates = []
    unreadable: list[bytes] = []
    last = after_id
    for cid, eid, kid, account, password, guid in rows:
        last = cid
        try:
            new_account = sealer.reseal(eid, COL_ACCOUNT, kid, account, target)
            new_password = (
                None
                if password is None
                else sealer.reseal(eid, COL_PASSWORD, kid, password, target)
            )
            new_guid = None if guid is None else sealer.reseal(eid, COL_GUID, kid, guid, target)
        except SealError:
            unreadable.append(eid)
            continue
        updates.append((target, new_account, new_password, new_guid, cid, kid))
    if updates:
        sql.reseal_rows(conn, updates)
    return ResealBatch(len(updates), unreadable, last, done=len(rows) < limit)


def _reseal_op(sealer: Sealer, after_id: int, limit: int, conn: sqlite3.Connection) -> ResealBatch:
    return reseal_batch(conn, sealer, after_id, limit)


@dataclass
class CheckReport:
    """What ``adsync keys check`` found: per key, rows that open and rows that do not."""

    keys: list[KeyRow] = field(default_factory=list)
    ok: dict[int, int] = field(default_factory=dict)
    bad: dict[int, int] = field(default_factory=dict)
    bad_event_ids: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.bad_event_ids

    @property
    def rows(self) -> int:
        return sum(self.ok.values()) + sum(self.bad.values())


def check_rows(conn: sqlite3.Connection, sealer: Sealer) -> CheckReport:
    """Open every sealed column of every change (the plaintext is dropped at once)."""
    report = CheckReport(keys=sql.key_rows(conn))
    for _cid, eid, kid, account, password, guid in sql.sealed_rows(conn):
        try:
            sealer.open(eid, COL_ACCOUNT, kid, account)
            if password is not None:
                sealer.open(eid, COL_PASSWORD, kid, password)
            if guid is not None:
                sealer.open(eid, COL_GUID, kid, guid)
        except SealError:
            report.bad[kid] = report.bad.get(kid, 0) + 1
            report.bad_event_ids.append(eid.hex())
            continue
        report.ok[kid] = report.ok.get(kid, 0) + 1
    return report


@dataclass
class MaintenanceResult:
    resealed: int = 0
    retired: list[int] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


class KeyMaintainer:
    """Follows the key table and finishes rotations, beside the daemon's other work."""

    def __init__(
        self, queue: Queue, *, interval: float = POLL_INTERVAL, batch: int = RESEAL_BATCH
    ) -> None:
        self._queue = queue
        self.interval = interval
        self.batch = batch
        self._fp: KeyFingerprint | None = None
        self._settled = False  # nothing left to do until the key table changes
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failing: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="adsync-key-maintainer")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
                self._failing = None
            except asyncio.CancelledError:
                raise
            except (QueueError, sqlite3.Error) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if reason != self._failing:  # once per distinct problem, not every second
                    log.error("key_maintenance_failed", reason=reason)
                self._failing = reason
            await asyncio.sleep(self.interval)

    async def step(self) -> MaintenanceResult:
        """Reload the keys if the table changed, then re-seal and retire as far as possible."""
        async with self._lock:
            return await self._step()

    async def _step(self) -> MaintenanceResult:
        queue = self._queue
        result = MaintenanceResult()
        fp = await queue.read(sql.fingerprint)
        if fp != self._fp:
            before = queue.sealer.active_key_id
            active = await queue.reload_keys()
            if self._fp is not None and active != before:
                log.info("data_key_activated", key_id=active, previous=before)
            self._fp = fp
            self._settled = False
        if self._settled or not inactive_data_keys(fp):
            self._settled = True
            return result
        sealer = queue.sealer
        cursor = 0
        batch = self.batch
        while True:
            res = await queue.write(functools.partial(_reseal_op, sealer, cursor, batch))
            result.resealed += res.resealed
            result.unreadable.extend(e.hex() for e in res.unreadable)
            cursor = res.last_id
            if res.done:
                break
        active = sealer.active_key_id
        result.retired = await queue.write(lambda c: sql.retire_unused(c, active))
        if result.resealed:
            log.info("rows_resealed", rows=result.resealed, key_id=active)
        for kid in result.retired:
            log.info("data_key_retired", key_id=kid)
        if result.unreadable:
            log.error(
                "reseal_unreadable_rows",
                rows=len(result.unreadable),
                event_ids=result.unreadable[:20],
                hint="run: adsync keys check",
            )
        self._settled = True  # a retirement changes the table: the next step reloads
        return result

    async def run_until_settled(self) -> MaintenanceResult:
        """Run steps until the table is stable (for the CLI working without a daemon)."""
        total = MaintenanceResult()
        while True:
            res = await self.step()
            total.resealed += res.resealed
            total.retired.extend(res.retired)
            total.unreadable.extend(res.unreadable)
            if self._settled and self._fp == await self._queue.read(sql.fingerprint):
                return total
