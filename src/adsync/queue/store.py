"""The encrypted durable queue: one change row, one delivery row per backend.

One aiosqlite connection (one sqlite thread) does everything; every write goes
through the group-commit writer, so an ACK-worthy append costs a share of one
transaction and one fsync. The daemon opens the queue in daemon mode (it takes
a lock file, returns crashed in-flight rows to pending, may create the key for
a fresh database); the CLI opens it in operator mode beside a running daemon.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import aiosqlite
import structlog

from adsync.clock import Clock, SystemClock
from adsync.dispatch.retry import Counters, Decision
from adsync.plugin import Change, RetryConfig
from adsync.queue import sql
from adsync.queue.errors import (
    KeyProviderError,
    MasterKeyMissing,
    QueueError,
    QueueKeyError,
    SealError,
)
from adsync.queue.keys import KeyProvider
from adsync.queue.models import (
    AppendResult,
    AppendStatus,
    Claim,
    ClaimBatch,
    DeliveryInfo,
    DeliveryState,
    QueueStatus,
)
from adsync.queue.rotation import KeyMaintainer
from adsync.queue.schema import migrate
from adsync.queue.seal import (
    PURPOSE_ACCOUNT_HMAC,
    PURPOSE_DATA,
    Sealer,
    new_key,
    unwrap_key,
    wrap_key,
)
from adsync.queue.writer import GroupWriter, WriterClosed

__all__ = ["AppendResult", "AppendStatus", "Queue"]

log = structlog.get_logger("adsync.queue")

_STORED = AppendResult(AppendStatus.STORED)
_DUPLICATE = AppendResult(AppendStatus.DUPLICATE, "event id already stored")
_CLOSING = AppendResult(AppendStatus.BUSY, "queue is closing")
T = TypeVar("T")

DEFAULT_EXPIRE_AFTER = RetryConfig().expire_after
BUSY_TIMEOUT_MS = 5000


def _disk_reason(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "full" in text:
        return "queue storage is full"
    if "readonly" in text or "read-only" in text:
        return "queue storage is read-only"
    if "locked" in text or "busy" in text:
        return "queue database is locked"
    return f"queue storage error ({type(exc).__name__})"


def _lock_daemon(path: Path) -> IO[bytes] | None:
    """One daemon per queue: an exclusive lock on ``<db>.lock`` held while open."""
    if sys.platform == "win32":  # pragma: no cover - the Windows service is a single instance
        return None
    import fcntl

    fh = open(str(path) + ".lock", "ab")  # held while the queue is open
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise QueueError(f"another adsync daemon is using the queue {path}") from None
    return fh


def _create_private(path: Path) -> None:
    """A new database file starts 0600 (SQLite gives -wal/-shm the same mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _load_keys(
    conn: sqlite3.Connection, keys: KeyProvider, *, may_create: bool, now: float
) -> tuple[dict[int, bytes], int, bytes]:
    """Unwrap (or, for a fresh database, create) the data keys; refuse a wrong master key."""
    rows = conn.execute(
        "SELECT key_id, purpose, wrapped, active FROM keys ORDER BY key_id"
    ).fetchall()
    has_changes = conn.execute("SELECT 1 FROM changes LIMIT 1").fetchone() is not None
    if not rows:
        if has_changes:
            raise QueueKeyError("the queue holds sealed changes but its wrapped keys are gone")
        if not may_create:
            raise QueueKeyError("the queue has no keys yet; start the daemon once to create them")
        try:
            master = keys.master_key(create=True)
        except KeyProviderError as exc:
            raise QueueKeyError(str(exc)) from None
        data_key, hmac_key = new_key(), new_key()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO keys (key_id, purpose, wrapped, created_at, active) VALUES (?,?,?,?,1)",
            [
                (1, PURPOSE_DATA, wrap_key(master, 1, PURPOSE_DATA, data_key), now),
                (2, PURPOSE_ACCOUNT_HMAC, wrap_key(master, 2, PURPOSE_ACCOUNT_HMAC, hmac_key), now),
            ],
        )
        conn.execute("COMMIT")
        return {1: data_key}, 1, hmac_key
    found_hmac: bytes | None = None
    try:
        master = keys.master_key(create=False)
    except MasterKeyMissing as exc:
        raise QueueKeyError(
            f"the queue holds sealed data but its master key is missing: {exc}"
        ) from None
    except KeyProviderError as exc:
        raise QueueKeyError(str(exc)) from None
    data: dict[int, bytes] = {}
    active = None
    try:
        for key_id, purpose, wrapped, is_active in rows:
            key = unwrap_key(master, key_id, purpose, bytes(wrapped))
            if purpose == PURPOSE_DATA:
                data[key_id] = key
                if is_active:
                    active = key_id
            elif purpose == PURPOSE_ACCOUNT_HMAC:
                found_hmac = key
    except SealError:
        raise QueueKeyError(
            f"the master key from {keys.describe()} does not open this queue's data keys "
            "(wrong key?); the daemon will not start with it"
        ) from None
    if active is None or found_hmac is None:
        raise QueueKeyError("the queue's key table is incomplete (no active data key)")
    return data, active, found_hmac


class Queue:
    """The queue. Open with ``await Queue.open(...)``; close with ``await queue.close()``."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        sealer: Sealer,
        backends: Sequence[str],
        *,
        max_pending: int,
        clock: Clock,
        pending: int,
        lock: IO[bytes] | None,
        expire_after: Mapping[str, float] | None,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._max_pending = max_pending
        self._clock = clock
        self._pending = pending
        self._lock = lock
        self._closing = False
        self._key_provider: KeyProvider | None = None
        self.key_maintainer: KeyMaintainer | None = None  # daemon mode: follows key rotations
        self._listeners: list[Callable[[], None]] = []
        self._expire_after: dict[str, float] = {
            b: (expire_after or {}).get(b, DEFAULT_EXPIRE_AFTER) for b in backends
        }
        self._writer = GroupWriter(
            self._on_thread,
            clock.time,
            lambda: self._expire_after,
            on_commit=self._committed,
        )
        self._writer.start()

    # --- opening and closing -------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path | str,
        keys: KeyProvider,
        backends: Sequence[str],
        *,
        max_pending: int,
        clock: Clock | None = None,
        operator: bool = False,
        expire_after: Mapping[str, float] | None = None,
    ) -> Queue:
        """Open (creating when new) the queue at ``path``.

        ``operator=True`` is for the CLI beside a running daemon: no lock, no
        crash recovery, no key creation. Raises ``QueueKeyError`` when the
        master key is missing or wrong for a queue that holds sealed data.
        """
        clock = clock or SystemClock()
        path = Path(path)
        lock = None if operator else _lock_daemon(path)
        db: aiosqlite.Connection | None = None
        try:
            if not operator:
                _create_private(path)
            elif not path.exists():
                raise QueueError(f"no queue database at {path}")
            db = await aiosqlite.connect(str(path), isolation_level=None)
            now = clock.time()
            sealer, pending = await _run(db, lambda c: cls._prepare(c, keys, operator, now))
        except BaseException:
            if db is not None:
                await db.close()
            if lock is not None:
                lock.close()
            raise
        queue = cls(
            db,
            sealer,
            backends,
            max_pending=max_pending,
            clock=clock,
            pending=pending,
            lock=lock,
            expire_after=expire_after,
        )
        queue._key_provider = keys
        if not operator:
            queue.key_maintainer = KeyMaintainer(queue)
            queue.key_maintainer.start()
        return queue

    @staticmethod
    def _prepare(
        conn: sqlite3.Connection, keys: KeyProvider, operator: bool, now: float
    ) -> tuple[Sealer, int]:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise QueueError(f"the queue database cannot use WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_size_limit = 8388608")  # truncate the WAL after checkpoints
        conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: index pages stay hot under load
        migrate(conn)
        data, active, hmac_key = _load_keys(conn, keys, may_create=not operator, now=now)
        if not operator:
            conn.execute("BEGIN IMMEDIATE")
            recovered = sql.recover_in_flight(conn, now)
            conn.execute("COMMIT")
            if recovered:
                log.warning("queue_recovered_in_flight", rows=recovered)
        pending = conn.execute(
            "SELECT COUNT(*) FROM changes WHERE password_sealed IS NOT NULL"
        ).fetchone()[0]
        return Sealer(data, active, hmac_key), int(pending)

    async def close(self) -> None:
        """Finish queued writes, checkpoint the WAL (old page images go), close."""
        if self._closing:
            return
        self._closing = True
        if self.key_maintainer is not None:
            await self.key_maintainer.stop()
        await self._writer.close()
        with contextlib.suppress(sqlite3.Error):
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._db.close()
        if self._lock is not None:
            self._lock.close()

    # --- plumbing --------------------------------------------------------------------------

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await _run(self._db, fn)

    def _committed(self, inserted: int) -> None:
        if inserted:
            self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each commit that made new work; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def set_expire_after(self, backend: str, seconds: float) -> None:
        """Expiry for deliveries created from now on (the dispatcher sets its config's)."""
        if backend in self._expire_after:
            self._expire_after[backend] = seconds

    @property
    def backends(self) -> list[str]:
        return list(self._expire_after)

    @property
    def commits(self) -> int:
        """Transactions committed by this process (group commit makes it < appends)."""
        return self._writer.commits

    @property
    def pending_changes(self) -> int:
        return self._pending

    # --- keys (rotation.py) ------------------------------------------------------------

    @property
    def sealer(self) -> Sealer:
        return self._sealer

    @property
    def key_provider(self) -> KeyProvider:
        assert self._key_provider is not None
        return self._key_provider

    async def reload_keys(self) -> int:
        """Unwrap the key table again (after a rotation); returns the active data key id."""
        provider, now = self.key_provider, self._clock.time()
        data, active, _ = await _run(
            self._db, lambda c: _load_keys(c, provider, may_create=False, now=now)
        )
        self._sealer.set_keys(data, active)
        return active

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``fn`` on the sqlite thread, between the writer's transactions."""
        return await _run(self._db, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group-commit transaction."""
        return await self._writer.op(fn)

    # --- the daemon's write path -----------------------------------------------------------

    async def append(self, change: Change) -> AppendResult:
        """Store ``change`` durably; returns only after its transaction committed."""
        return (await self.append_many([change]))[0]

    async def append_many(self, changes: Sequence[Change]) -> list[AppendResult]:
        """Store each change durably, in one transaction; one result per change, in order.

        Past ``max_pending`` the changes that do not fit are BUSY; the others are stored.
        """
        if self._closing:
            return [_CLOSING] * len(changes)
        room = self._max_pending - self._pending - self._writer.queued_appends
        fits = changes[: max(room, 0)]
        full = [
            AppendResult(AppendStatus.BUSY, f"queue is full ({self._max_pending} changes pending)")
        ] * (len(changes) - len(fits))
        if not fits:
            return full
        seal = self._sealer.seal_change
        try:
            inserted = await self._writer.append_many([seal(c) for c in fits])
        except WriterClosed:
            return [_CLOSING] * len(changes)
        except sqlite3.Error as exc:
            reason = _disk_reason(exc)
            log.error("queue_append_failed", reason=reason, error=type(exc).__name__)
            return [AppendResult(AppendStatus.BUSY, reason)] * len(changes)
        if self._expire_after:
            self._pending += sum(inserted)
        return [_STORED if flag else _DUPLICATE for flag in inserted] + full

    # --- the dispatcher's API --------------------------------------------------------------

    async def claim(self, backend: str, limit: int) -> ClaimBatch:
        """Take up to ``limit`` due deliveries into in_flight (see ``sql.claim``)."""
        now = self._clock.time()
        result = await self._writer.op(lambda c: sql.claim(c, backend, limit, now))
        self._pending -= result.dropped
        claims: list[Claim] = []
        for row in result.rows:
            try:
                claims.append(self._open_claim(backend, row))
            except (SealError, UnicodeDecodeError, ValueError) as exc:
                reason = str(exc) if isinstance(exc, SealError) else "unreadable sealed data"
                log.error("queue_unreadable_row", backend=backend, reason=reason)
                await self._finish(backend, row.change_id, "failed", "unreadable", reason)
        return ClaimBatch(claims, result.next_due, result.finished)

    def _open_claim(self, backend: str, row: sql.ClaimedRow) -> Claim:
        s = self._sealer
        eid = bytes(row.event_id)
        if row.password_sealed is None:
            raise ValueError("password no longer held")
        change = Change(
            event_id=eid,
            account=s.open_account(eid, row.key_id, bytes(row.account_sealed)),
            password=s.open_password(eid, row.key_id, bytes(row.password_sealed)),
            changed_at_ms=row.changed_at_ms,
            domain=row.domain,
            source_host=row.source_host,
            rid=row.rid,
            object_guid=s.open_guid(
                eid, row.key_id, None if row.guid_sealed is None else bytes(row.guid_sealed)
            ),
            sequence=row.sequence,
        )
        counters = Counters(row.attempts, row.rejections, row.first_unknown_user_at, row.expires_at)
        return Claim(row.change_id, backend, change, counters, bytes(row.account_hash))

    async def _finish(
        self, backend: str, change_id: int, state: str, outcome: str, error: str
    ) -> None:
        now = self._clock.time()
        dropped = await self._writer.op(
            lambda c: sql.finish(c, backend, change_id, state, outcome, error, now)
        )
        self._pending -= dropped

    async def record(self, claim: Claim, decision: Decision, outcome: str, error: str) -> None:
        """Store the result of one attempt (the password goes once no row needs it)."""
        now = self._clock.time()
        dropped = await self._writer.op(
            lambda c: sql.record(
                c,
                claim.backend,
                claim.change_id,
                state=decision.state.value,
                attempts=decision.attempts,
                rejections=decision.rejections,
                first_unknown_user_at=decision.first_unknown_user_at,
                next_attempt_at=decision.next_attempt_at,
                outcome=outcome,
                error=error,
                now=now,
            )
        )
        self._pending -= dropped

    async def release(self, backend: str, change_ids: Sequence[int]) -> None:
        """Give unfinished in_flight rows back to pending without counting an attempt."""
        if not change_ids:
            return
        now = self._clock.time()
        ids = list(change_ids)
        await self._writer.op(lambda c: sql.release(c, backend, ids, now))

    async def prune_completed(self, retain: float, remember: float) -> int:
        """Delete changes delivered over ``retain`` s ago; their ids stay seen ``remember`` s."""
        now = self._clock.time()
        return await self._writer.op(
            lambda c: sql.prune_completed(c, now - retain, now - remember, now)
        )

    # --- the operator's API ----------------------------------------------------------------

    async def status(self) -> QueueStatus:
        counts: dict[str, dict[str, int]] = {}
        async with self._db.execute(
            "SELECT backend, state, COUNT(*) FROM deliveries GROUP BY backend, state"
        ) as cur:
            async for backend, state, n in cur:
                counts.setdefault(backend, {s.value: 0 for s in DeliveryState})[state] = n
        async with self._db.execute(
            "SELECT MIN(created_at) FROM deliveries WHERE state IN ('pending', 'in_flight')"
        ) as cur:
            row = await cur.fetchone()
        async with self._db.execute(
            "SELECT COUNT(*) FROM changes WHERE password_sealed IS NOT NULL"
        ) as cur:
            held = await cur.fetchone()
        oldest = None if row is None or row[0] is None else float(row[0])
        return QueueStatus(
            counts=counts,
            pending_changes=int(held[0]) if held else 0,
            oldest_pending_at=oldest,
            oldest_pending_age=None if oldest is None else max(0.0, self._clock.time() - oldest),
        )

    async def list_deliveries(
        self,
        backend: str | None = None,
        state: DeliveryState | str | None = None,
        limit: int = 100,
    ) -> list[DeliveryInfo]:
        """Delivery rows, newest first, with the account opened for "who" (never a password)."""
        where = []
        args: list[Any] = []
        if backend is not None:
            where.append("d.backend = ?")
            args.append(backend)
        if state is not None:
            where.append("d.state = ?")
            args.append(DeliveryState(state).value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        query = (
            "SELECT c.event_id, d.backend, d.state, c.key_id, c.account_sealed, c.domain,"  # noqa: S608
            " d.attempts, d.rejections, c.received_at, d.updated_at, d.next_attempt_at,"
            " d.expires_at, d.last_outcome, d.last_error, c.password_sealed IS NOT NULL"
            " FROM deliveries d JOIN changes c ON c.id = d.change_id"
            + clause
            + " ORDER BY d.change_id DESC, d.backend LIMIT ?"
        )
        args.append(int(limit))
        out: list[DeliveryInfo] = []
        async with self._db.execute(query, args) as cur:
            async for r in cur:
                eid = bytes(r[0])
                try:
                    account = self._sealer.open_account(eid, r[3], bytes(r[4]))
                except SealError:
                    account = "<unreadable>"
                st = DeliveryState(r[2])
                out.append(
                    DeliveryInfo(
                        event_id=eid.hex(),
                        backend=r[1],
                        state=st,
                        account=account,
                        domain=r[5],
                        attempts=r[6],
                        rejections=r[7],
                        received_at=r[8],
                        updated_at=r[9],
                        next_attempt_at=r[10] if st is DeliveryState.PENDING else None,
                        expires_at=r[11],
                        last_outcome=r[12],
                        last_error=r[13],
                        password_held=bool(r[14]),
                    )
                )
        return out

    async def retry_failed(
        self, backend: str | None = None, event_ids: Sequence[bytes | str] | None = None
    ) -> int:
        """Re-queue failed rows whose change still holds its password; returns how many.

        A change keeps its password while any of its deliveries is active, so
        only rows that failed while another backend still needed the password
        can be retried; for the others the user must change the password again.
        """
        now = self._clock.time()
        ids = _event_ids(event_ids)
        n = await self._writer.op(lambda c: sql.retry_failed(c, backend, ids, now))
        if n:
            self._notify()
        return n

    async def purge_failed(
        self,
        backend: str | None = None,
        event_ids: Sequence[bytes | str] | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete failed rows; with ``older_than`` (seconds), only rows failed that long ago."""
        now = self._clock.time()
        ids = _event_ids(event_ids)
        cutoff = None if older_than is None else now - older_than
        return await self._writer.op(lambda c: sql.purge_failed(c, backend, ids, cutoff, now))

    async def purge_backend(self, backend: str) -> int:
        """Delete every row of a backend that is no longer configured (pending ones too).

        Refused for a backend this queue was opened with: its lane owns those rows.
        """
        if backend in self._expire_after:
            raise QueueError(f"backend {backend!r} is configured; remove it from the config first")
        now = self._clock.time()
        states = ("pending", "in_flight", "failed", "delivered", "superseded", "skipped")
        return await self._writer.op(
            lambda c: sql.purge_failed(c, backend, None, None, now, states)
        )


def _event_ids(values: Sequence[bytes | str] | None) -> list[bytes] | None:
    if values is None:
        return None
    out = []
    for v in values:
        if isinstance(v, str):
            try:
                v = bytes.fromhex(v)
            except ValueError:
                raise QueueError(f"event id {v!r} is not hex") from None
        if len(v) != 16:
            raise QueueError("an event id is 16 bytes (32 hex digits)")
        out.append(v)
    return out


async def _run(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(sqlite3_connection)`` on aiosqlite's thread: one hop for a whole batch.

    aiosqlite has no public call for this; ``_execute`` is what its own methods use.
    """
    conn = db._conn
    result = await db._execute(fn, conn)  # type: ignore[no-untyped-call]
    return cast(T, result)
