"""The encrypted durable queue: one change row, one delivery row per backend.

One sqlite connection on one dedicated thread (``thread.py``) does everything;
every write goes through the group-commit writer, so an ACK-worthy append costs
a share of one transaction and one fsync. The statements are in ``sql.py``.
The daemon opens the queue in daemon mode (it takes a lock file, returns
crashed in-flight rows to pending, may create the key for a fresh database);
the CLI opens it in operator mode beside a running daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

import structlog

from adsync.clock import Clock, SystemClock
from adsync.plugin import Change, RetryConfig
from adsync.queue import crashpoint, highwater, sql
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
    Attempt,
    Claim,
    ClaimBatch,
    Counters,
    Decision,
    DeliveryInfo,
    DeliveryState,
    QueueDepth,
    QueueStatus,
    RecordHook,
)
from adsync.queue.rotation import KeyMaintainer
from adsync.queue.seal import (
    PURPOSE_ACCOUNT_HMAC,
    PURPOSE_DATA,
    Sealer,
    new_key,
    unwrap_key,
    wrap_key,
)
from adsync.queue.thread import SqliteThread
from adsync.queue.writer import GroupWriter, WriterClosed

__all__ = ["AppendResult", "AppendStatus", "Queue"]

log = structlog.get_logger("adsync.queue")

_STORED = AppendResult(AppendStatus.STORED)
_DUPLICATE = AppendResult(AppendStatus.DUPLICATE, "event id already stored")
_CLOSING = AppendResult(AppendStatus.BUSY, "queue is closing")
T = TypeVar("T")

DEFAULT_EXPIRE_AFTER = RetryConfig().expire_after
PROBE_TIMEOUT = 10.0
# The probe's fresh row: its commit writes 18 WAL pages (the new row, the old one zeroed by
# secure_delete), as many as an append of ~70 changes.
PROBE_BYTES = 32 * 1024
# A refused append keeps the queue unhealthy this long (unless one is stored since):
# it covers a batch larger than the probe's row.
APPEND_FAILURE_MEMORY = 10.0


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
    rows = sql.key_table(conn)
    if not rows:
        if sql.has_changes(conn):
            raise QueueKeyError("the queue holds sealed changes but its wrapped keys are gone")
        if not may_create:
            raise QueueKeyError("the queue has no keys yet; start the daemon once to create them")
        try:
            master = keys.master_key(create=True)
        except KeyProviderError as exc:
            raise QueueKeyError(str(exc)) from None
        data_key, hmac_key = new_key(), new_key()
        with sql.transaction(conn):
            sql.add_keys(
                conn,
                [
                    (1, PURPOSE_DATA, wrap_key(master, 1, PURPOSE_DATA, data_key)),
                    (2, PURPOSE_ACCOUNT_HMAC, wrap_key(master, 2, PURPOSE_ACCOUNT_HMAC, hmac_key)),
                ],
                now,
            )
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
            key = unwrap_key(master, key_id, purpose, wrapped)
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


def _prepare(
    conn: sqlite3.Connection, path: Path, keys: KeyProvider, operator: bool, now: float
) -> tuple[Sealer, int, int]:
    """On the sqlite thread at open: settings, schema, the acknowledged count (daemon), keys,
    crash recovery; returns the sealer, the pending count and the stored count."""
    if not operator:  # before anything is written: the lost WAL may still be put back
        highwater.check(path, sql.appended(conn))
    sql.configure(conn)
    sql.migrate(conn)
    stored = sql.appended(conn)
    data, active, hmac_key = _load_keys(conn, keys, may_create=not operator, now=now)
    if not operator:
        with sql.transaction(conn):
            recovered = sql.recover_in_flight(conn, now)
        if recovered:
            log.warning("queue_recovered_in_flight", rows=recovered)
    return Sealer(data, active, hmac_key), sql.pending_changes(conn), stored


class Queue:
    """The queue. Open with ``await Queue.open(...)``; close with ``await queue.close()``."""

    def __init__(
        self,
        db: SqliteThread,
        path: Path,
        sealer: Sealer,
        backends: Sequence[str],
        *,
        max_pending: int,
        clock: Clock,
        pending: int,
        lock: IO[bytes] | None,
        expire_after: Mapping[str, float] | None,
        key_provider: KeyProvider,
        on_record: RecordHook | None,
    ) -> None:
        self._db = db
        self.path = path
        self._sealer = sealer
        self._max_pending = max_pending
        self._clock = clock
        self._pending = pending
        self._lock = lock
        self._closing = False
        self._key_provider = key_provider
        self._on_record = on_record
        self.key_maintainer: KeyMaintainer | None = None  # daemon mode: follows key rotations
        self._mark: highwater.MarkWriter | None = None  # daemon mode: <db>.acked
        self._appended = 0  # changes the database has stored, ever (daemon mode)
        self._append_failed: tuple[str, float] | None = None  # last append's storage error
        self._listeners: list[Callable[[], None]] = []
        self._expire_after: dict[str, float] = {
            b: (expire_after or {}).get(b, DEFAULT_EXPIRE_AFTER) for b in backends
        }
        self._writer = GroupWriter(
            db.run,
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
        on_record: RecordHook | None = None,
    ) -> Queue:
        """Open (creating when new) the queue at ``path``.

        ``operator=True`` is for the CLI beside a running daemon: no lock, no
        crash recovery, no key creation. ``on_record`` is called after each
        attempt's outcome committed (the daemon's metrics). Raises
        ``QueueKeyError`` when the master key is missing or wrong for a queue
        that holds sealed data.
        """
        clock = clock or SystemClock()
        path = Path(path)
        if (hook := crashpoint.armed()) is not None:
            log.warning("test_crash_hook_armed", setting=hook, note="test aid, not for production")
        lock = None if operator else _lock_daemon(path)
        db: SqliteThread | None = None
        try:
            if not operator:
                _create_private(path)
            elif not path.exists():
                raise QueueError(f"no queue database at {path}")
            db = await SqliteThread.open(path)
            now = clock.time()
            sealer, pending, stored = await db.run(lambda c: _prepare(c, path, keys, operator, now))
        except sqlite3.DatabaseError as exc:  # damaged, not SQLite, not ours, not writable
            if db is not None:
                await db.close()
            if lock is not None:
                lock.close()
            raise QueueError(f"SQLite cannot use the file: {exc}") from None
        except BaseException:
            if db is not None:
                await db.close()
            if lock is not None:
                lock.close()
            raise
        queue = cls(
            db,
            path,
            sealer,
            backends,
            max_pending=max_pending,
            clock=clock,
            pending=pending,
            lock=lock,
            expire_after=expire_after,
            key_provider=keys,
            on_record=on_record,
        )
        if not operator:
            queue._appended = stored
            queue._mark = await asyncio.to_thread(highwater.MarkWriter, path, stored)
            queue.key_maintainer = KeyMaintainer(queue)
            queue.key_maintainer.start()
        return queue

    @classmethod
    async def accept_loss(cls, path: Path | str) -> tuple[int | None, int]:
        """The operator accepts that the database is behind what it acknowledged.

        Daemon stopped (its lock is taken meanwhile; no key needed). Sets
        ``<db>.acked`` to what the database holds; returns (acknowledged before, stored).
        """
        path = Path(path)
        if not path.exists():
            raise QueueError(f"no queue database at {path}")
        lock = _lock_daemon(path)
        try:
            db = await SqliteThread.open(path)
            try:
                stored = await db.run(_stored_count)
            finally:
                await db.close()
            before = await asyncio.to_thread(highwater.accept, path, stored)
        finally:
            if lock is not None:
                lock.close()
        log.warning("queue_loss_accepted", acknowledged=before, stored=stored)
        return before, stored

    async def close(self) -> None:
        """Finish queued writes, checkpoint the WAL (old page images go), close."""
        if self._closing:
            return
        self._closing = True
        if self.key_maintainer is not None:
            await self.key_maintainer.stop()
        await self._writer.close()
        if self._mark is not None:
            await asyncio.to_thread(self._mark.close)
        with contextlib.suppress(sqlite3.Error):
            await self._db.run(sql.checkpoint)
        await self._db.close()
        if self._lock is not None:
            self._lock.close()

    # --- plumbing --------------------------------------------------------------------------

    def _committed(self, inserted: int, dropped: int) -> None:
        """After each commit: ``inserted`` new changes, ``dropped`` passwords of older ones
        they superseded (``sql.supersede_older``)."""
        self._pending -= dropped
        if inserted:
            if self._mark is not None:
                self._appended += inserted
                self._mark.advance(self._appended)
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

    def set_backends(self, names: Sequence[str], expire_after: Mapping[str, float]) -> None:
        """Changes appended from now on fan out to ``names``; rows already stored stay."""
        self._expire_after = {n: expire_after[n] for n in names}

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
        return self._key_provider

    async def reload_keys(self) -> int:
        """Unwrap the key table again (after a rotation); returns the active data key id."""
        provider, now = self.key_provider, self._clock.time()
        data, active, _ = await self._db.run(
            lambda c: _load_keys(c, provider, may_create=False, now=now)
        )
        self._sealer.set_keys(data, active)
        return active

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``fn`` on the sqlite thread, between the writer's transactions."""
        return await self._db.run(fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group-commit transaction; returns after its commit."""
        return await self._writer.op(fn)

    # --- the daemon's write path -----------------------------------------------------------

    async def append_many(self, changes: Sequence[Change]) -> list[AppendResult]:
        """Store each change durably, in one transaction; one result per change, in order.

        Returns only after that transaction committed. Past ``max_pending`` the
        changes that do not fit are BUSY; the others are stored.
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
            self._append_failed = (reason, self._clock.time())
            log.error("queue_append_failed", reason=reason, error=type(exc).__name__)
            return [AppendResult(AppendStatus.BUSY, reason)] * len(changes)
        self._append_failed = None
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
                await self._finish(backend, row.change_id, "unreadable", reason)
        return ClaimBatch(claims, result.next_due, result.finished, now, len(result.rows) >= limit)

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
        return Claim(
            row.change_id, backend, change, counters, bytes(row.account_hash), row.received_at
        )

    async def _finish(self, backend: str, change_id: int, outcome: str, error: str) -> None:
        now = self._clock.time()
        dropped = await self._writer.op(
            lambda c: sql.finish(c, backend, change_id, DeliveryState.FAILED, outcome, error, now)
        )
        self._pending -= dropped

    async def record(self, claim: Claim, decision: Decision, outcome: str, error: str) -> None:
        """Store the result of one attempt (the password goes once no row needs it)."""
        await self.record_many([Attempt(claim, decision, outcome, error)])

    async def record_many(self, attempts: Sequence[Attempt]) -> None:
        """Store the results of many attempts in one transaction, one statement for all.

        Returns after the commit; then ``on_record`` hears of each, in order.
        """
        if not attempts:
            return
        now = self._clock.time()
        self._pending -= await self._writer.op(lambda c: sql.record_many(c, attempts, now))
        hook = self._on_record
        if hook is None:
            return
        now = self._clock.time()
        for a in attempts:
            latency = None
            if a.decision.state is DeliveryState.DELIVERED and a.claim.received_at:
                latency = now - a.claim.received_at
            hook(a.claim.backend, a.outcome, a.decision.state, latency, a.error)

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

    # --- observation -----------------------------------------------------------------------

    async def depth(self) -> QueueDepth:
        """Rows by backend and state, the oldest unfinished row per backend (metrics)."""
        counts, oldest = await self._db.run(sql.depth)
        for backend in self.backends:
            counts.setdefault(backend, {})
        return QueueDepth(counts, oldest, self._pending, self._clock.time())

    async def write_probe(self) -> str | None:
        """None when the queue can take an append now, else why not (for /healthz).

        Real checks: the files open for writing (a read-only mount or an
        immutable file refuses this even to root); a transaction that rewrites
        one row with its own value commits through the group writer (it runs);
        a fresh ``PROBE_BYTES`` row commits in a transaction of its own (room
        for new pages: a full disk); and the last append did not fail for a
        storage error in the last ``APPEND_FAILURE_MEMORY`` seconds.
        """
        for suffix in ("", "-wal"):
            name = Path(str(self.path) + suffix)
            try:
                fd = os.open(name, os.O_RDWR)
            except FileNotFoundError:
                continue  # no WAL file right after a checkpoint: SQLite recreates it
            except OSError as exc:
                return f"{name.name} cannot be opened for writing ({exc.strerror})"
            os.close(fd)
        try:
            await asyncio.wait_for(self._writer.op(sql.touch), timeout=PROBE_TIMEOUT)
        except TimeoutError:
            return f"a write transaction did not commit within {PROBE_TIMEOUT:g}s"
        except sqlite3.Error as exc:
            return f"a write transaction failed ({_short(exc)})"
        except Exception as exc:
            return f"a write transaction failed ({type(exc).__name__})"
        try:
            await asyncio.wait_for(
                self._db.run(lambda c: sql.probe_space(c, PROBE_BYTES)), timeout=PROBE_TIMEOUT
            )
        except TimeoutError:
            return f"a {PROBE_BYTES // 1024} KiB write did not commit within {PROBE_TIMEOUT:g}s"
        except sqlite3.Error as exc:
            return f"{_disk_reason(exc)}: a {PROBE_BYTES // 1024} KiB write did not commit"
        failed = self._append_failed
        if failed is not None:
            ago = self._clock.time() - failed[1]
            if ago < APPEND_FAILURE_MEMORY:
                return f"{failed[0]}: an append was refused {ago:.0f}s ago"
        return None

    # --- the operator's API ----------------------------------------------------------------

    async def status(self) -> QueueStatus:
        """What ``adsync queue status`` shows: the depth, with a fresh count of held passwords
        (another process may have changed it)."""
        (counts, oldest_by_backend), held = await self._db.run(
            lambda c: (sql.depth(c), sql.pending_changes(c))
        )
        oldest = min(oldest_by_backend.values(), default=None)
        return QueueStatus(
            counts={
                backend: {s.value: states.get(s.value, 0) for s in DeliveryState}
                for backend, states in counts.items()
            },
            pending_changes=held,
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
        st_filter = None if state is None else DeliveryState(state)
        rows = await self._db.run(lambda c: sql.deliveries(c, backend, st_filter, limit))
        out: list[DeliveryInfo] = []
        for r in rows:
            try:
                account = self._sealer.open_account(r.event_id, r.key_id, r.account_sealed)
            except SealError:
                account = "<unreadable>"
            st = DeliveryState(r.state)
            out.append(
                DeliveryInfo(
                    event_id=r.event_id.hex(),
                    backend=r.backend,
                    state=st,
                    account=account,
                    domain=r.domain,
                    attempts=r.attempts,
                    rejections=r.rejections,
                    received_at=r.received_at,
                    updated_at=r.updated_at,
                    next_attempt_at=r.next_attempt_at if st is DeliveryState.PENDING else None,
                    expires_at=r.expires_at,
                    last_outcome=r.last_outcome,
                    last_error=r.last_error,
                    password_held=r.password_held,
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
        states = tuple(DeliveryState)
        return await self._writer.op(
            lambda c: sql.purge_failed(c, backend, None, None, now, states)
        )


def _stored_count(conn: sqlite3.Connection) -> int:
    sql.configure(conn)
    sql.migrate(conn)
    return sql.appended(conn)


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


def _short(exc: sqlite3.Error) -> str:
    text = str(exc)
    return text if len(text) <= 80 else text[:77] + "..."
