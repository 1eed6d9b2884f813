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

The statement functions below run on the sqlite thread inside a transaction
opened by their caller; they see sealed bytes and keys, never log either.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from adsync.queue.errors import QueueError, SealError
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

KeyFingerprint = tuple[tuple[int, str, int], ...]


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: int
    purpose: str
    active: bool
    created_at: float


def key_rows(conn: sqlite3.Connection) -> list[KeyRow]:
    rows = conn.execute(
        "SELECT key_id, purpose, active, created_at FROM keys ORDER BY key_id"
    ).fetchall()
    return [KeyRow(int(k), str(p), bool(a), float(c)) for k, p, a, c in rows]


def fingerprint(conn: sqlite3.Connection) -> KeyFingerprint:
    """What changes when a key is added, activated or retired (cheap: a handful of rows)."""
    rows = conn.execute("SELECT key_id, purpose, active FROM keys ORDER BY key_id").fetchall()
    return tuple((int(k), str(p), int(a)) for k, p, a in rows)


def inactive_data_keys(fp: KeyFingerprint) -> list[int]:
    return [kid for kid, purpose, active in fp if purpose == PURPOSE_DATA and not active]


def add_data_key(conn: sqlite3.Connection, master: bytes, now: float) -> int:
    """Add a new data key and make it the only active one; returns its id.

    The caller must have checked that ``master`` opens the existing keys: a key
    wrapped under another master key would make the queue unreadable.
    """
    row = conn.execute("SELECT COALESCE(MAX(key_id), 0) FROM keys").fetchone()
    key_id = int(row[0]) + 1
    conn.execute(
        "INSERT INTO keys (key_id, purpose, wrapped, created_at, active) VALUES (?,?,?,?,1)",
        (key_id, PURPOSE_DATA, wrap_key(master, key_id, PURPOSE_DATA, new_key()), now),
    )
    conn.execute(
        "UPDATE keys SET active = 0 WHERE purpose = ? AND key_id != ?", (PURPOSE_DATA, key_id)
    )
    return key_id


def verify_master(conn: sqlite3.Connection, master: bytes) -> None:
    """Raise SealError unless ``master`` unwraps every key in the table."""
    for key_id, purpose, wrapped in conn.execute("SELECT key_id, purpose, wrapped FROM keys"):
        unwrap_key(master, int(key_id), str(purpose), bytes(wrapped))


def rewrap_keys(conn: sqlite3.Connection, old_master: bytes, new_master: bytes) -> int:
    """Wrap every key under ``new_master`` (master-key rotation); returns keys rewrapped.

    All or nothing: the caller runs it in one transaction, and a key that does
    not open with ``old_master`` raises before anything is written.
    """
    rows = conn.execute("SELECT key_id, purpose, wrapped FROM keys").fetchall()
    updates = []
    for key_id, purpose, wrapped in rows:
        key = unwrap_key(old_master, int(key_id), str(purpose), bytes(wrapped))
        updates.append((wrap_key(new_master, int(key_id), str(purpose), key), int(key_id)))
    conn.executemany("UPDATE keys SET wrapped = ? WHERE key_id = ?", updates)
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
    rows = conn.execute(
        "SELECT id, event_id, key_id, account_sealed, password_sealed, guid_sealed FROM changes"
        " WHERE id > ? AND key_id != ? ORDER BY id LIMIT ?",
        (after_id, target, limit),
    ).fetchall()
    updates = []
    unreadable: list[bytes] = []
    last = after_id
    for cid, eid_raw, kid, account, password, guid in rows:
        last = int(cid)
        eid = bytes(eid_raw)
        try:
            new_account = sealer.reseal(eid, COL_ACCOUNT, kid, bytes(account), target)
            new_password = (
                None
                if password is None
                else sealer.reseal(eid, COL_PASSWORD, kid, bytes(password), target)
            )
            new_guid = (
                None if guid is None else sealer.reseal(eid, COL_GUID, kid, bytes(guid), target)
            )
        except SealError:
            unreadable.append(eid)
            continue
        updates.append((target, new_account, new_password, new_guid, cid, kid))
    if updates:
        conn.executemany(
            "UPDATE changes SET key_id = ?, account_sealed = ?, password_sealed = ?,"
            " guid_sealed = ? WHERE id = ? AND key_id = ?",
            updates,
        )
    return ResealBatch(len(updates), unreadable, last, done=len(rows) < limit)


def _reseal_op(sealer: Sealer, after_id: int, limit: int, conn: sqlite3.Connection) -> ResealBatch:
    return reseal_batch(conn, sealer, after_id, limit)


def retire_unused(conn: sqlite3.Connection, active_key_id: int) -> list[int]:
    """Delete inactive data keys no row uses any more; returns their ids."""
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT key_id FROM keys k WHERE purpose = ? AND active = 0 AND key_id != ?"
            " AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.key_id = k.key_id)",
            (PURPOSE_DATA, active_key_id),
        )
    ]
    conn.executemany("DELETE FROM keys WHERE key_id = ?", [(i,) for i in ids])
    return ids


def rows_per_key(conn: sqlite3.Connection) -> dict[int, int]:
    return {
        int(k): int(n)
        for k, n in conn.execute("SELECT key_id, COUNT(*) FROM changes GROUP BY key_id")
    }


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
    report = CheckReport(keys=key_rows(conn))
    cur = conn.execute(
        "SELECT event_id, key_id, account_sealed, password_sealed, guid_sealed FROM changes"
        " ORDER BY id"
    )
    for eid_raw, kid_raw, account, password, guid in cur:
        eid, kid = bytes(eid_raw), int(kid_raw)
        try:
            sealer.open(eid, COL_ACCOUNT, kid, bytes(account))
            if password is not None:
                sealer.open(eid, COL_PASSWORD, kid, bytes(password))
            if guid is not None:
                sealer.open(eid, COL_GUID, kid, bytes(guid))
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
        fp = await queue.read(fingerprint)
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
        result.retired = await queue.write(lambda c: retire_unused(c, active))
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
            if self._settled and self._fp == await self._queue.read(fingerprint):
                return total
