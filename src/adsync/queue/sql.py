"""Every SQL statement of the queue, as plain functions run on the sqlite thread.

One place for the schema, the pragmas, the transactions and each statement, so
a change of schema or of a query's plan is made and reviewed here. Unless a
function says otherwise it runs inside a transaction its caller opened (the
group-commit writer, or :func:`transaction`) and does not commit. They see
only sealed bytes and wrapped keys: nothing here can leak a password.
"""

# ruff: noqa: S608 - queries are built from fixed fragments and "?" placeholders only

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from adsync.queue import crashpoint
from adsync.queue.errors import QueueError
from adsync.queue.models import ACTIVE_STATES, Attempt, DeliveryState, KeyRow
from adsync.queue.seal import PURPOSE_DATA, SealedChange

# --- connection settings and transactions ------------------------------------------------

BUSY_TIMEOUT_MS = 5000
# SQLite's page cache, per connection. It fills up to this size as the queue grows and is
# never given back; docs/queue.md ("Memory") says why 4 MiB and what was measured.
CACHE_KIB = 4096


def configure(conn: sqlite3.Connection) -> None:
    """The pragmas of docs/queue.md ("Storage settings"); refuses a file without WAL."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise QueueError(f"the queue database cannot use WAL (journal_mode={mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_size_limit = 8388608")  # truncate the WAL after checkpoints
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database and truncate it (old page images go). Autocommit."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; any exception rolls the whole of it back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        crashpoint.commit(lambda: conn.execute("COMMIT"))
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """One op inside a transaction: a Python error undoes only its own writes.

    A sqlite error is left to fail the whole transaction (the database may be
    unable to write at all: full, read-only, locked).
    """
    conn.execute("SAVEPOINT op")
    try:
        yield
    except sqlite3.Error:
        raise
    except BaseException:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        raise
    conn.execute("RELEASE op")


# --- schema ------------------------------------------------------------------------------
# Numbered migrations: each is applied once, in order, inside one transaction together
# with its row in ``schema_migrations``; a database newer than this code is refused.

_V1 = """
CREATE TABLE keys (
    key_id      INTEGER PRIMARY KEY,
    purpose     TEXT NOT NULL,             -- 'data' | 'account-hmac'
    wrapped     BLOB NOT NULL,             -- nonce | AES-GCM(master, key), AAD names id+purpose
    created_at  REAL NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE changes (
    id              INTEGER PRIMARY KEY,   -- arrival order: per-account order follows it
    event_id        BLOB NOT NULL UNIQUE,  -- the source's idempotency key
    key_id          INTEGER NOT NULL REFERENCES keys(key_id),
    account_hash    BLOB NOT NULL,         -- HMAC(account-hmac key, domain\\account)
    account_sealed  BLOB NOT NULL,
    password_sealed BLOB,                  -- NULL once no delivery needs it
    guid_sealed     BLOB,
    domain          TEXT NOT NULL,
    source_host     TEXT,
    rid             INTEGER,
    changed_at_ms   INTEGER NOT NULL,
    sequence        INTEGER,
    received_at     REAL NOT NULL
);
CREATE TABLE deliveries (
    change_id             INTEGER NOT NULL REFERENCES changes(id) ON DELETE CASCADE,
    backend               TEXT NOT NULL,
    account_hash          BLOB NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN
                              ('pending','in_flight','delivered','failed','superseded')),
    attempts              INTEGER NOT NULL DEFAULT 0,
    rejections            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at       REAL NOT NULL,
    expires_at            REAL NOT NULL,
    first_unknown_user_at REAL,
    last_outcome          TEXT,
    last_error            TEXT,
    created_at            REAL NOT NULL,
    updated_at            REAL NOT NULL,
    PRIMARY KEY (change_id, backend)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (backend, state, next_attempt_at);
CREATE INDEX deliveries_account ON deliveries (backend, account_hash, change_id);
"""

# v2: event ids of pruned (completed) changes, so a late resend stays a duplicate.
_V2 = """
CREATE TABLE seen_events (
    event_id  BLOB PRIMARY KEY,
    seen_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_events_age ON seen_events (seen_at);
"""

# v3: the count of changes ever stored (compared at start with ``<db>.acked``, which is kept
# outside the WAL: highwater.py), and the row the health probe rewrites.
_V3 = """
CREATE TABLE counters (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    appended  INTEGER NOT NULL               -- changes stored, ever: never goes down
);
INSERT INTO counters (id, appended) VALUES (1, 0);
CREATE TABLE health_probe (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    filler  BLOB NOT NULL
)
"""

# v4 (issue 14): the 'skipped' state (SQLite cannot alter a CHECK: the table is rebuilt),
# and the capture history the gap audit and the stale-password guard read. A capture
# row holds no password: a keyed hash of the account, the password version the
# directory showed right after the change (NULL: unknown) and when.
_V4 = """
CREATE TABLE deliveries_v4 (
    change_id             INTEGER NOT NULL REFERENCES changes(id) ON DELETE CASCADE,
    backend               TEXT NOT NULL,
    account_hash          BLOB NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN
                              ('pending','in_flight','delivered','failed','superseded','skipped')),
    attempts              INTEGER NOT NULL DEFAULT 0,
    rejections            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at       REAL NOT NULL,
    expires_at            REAL NOT NULL,
    first_unknown_user_at REAL,
    last_outcome          TEXT,
    last_error            TEXT,
    created_at            REAL NOT NULL,
    updated_at            REAL NOT NULL,
    PRIMARY KEY (change_id, backend)
) WITHOUT ROWID;
INSERT INTO deliveries_v4 SELECT * FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v4 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (backend, state, next_attempt_at);
CREATE INDEX deliveries_account ON deliveries (backend, account_hash, change_id);
CREATE TABLE captures (
    event_id      BLOB PRIMARY KEY,
    account_hash  BLOB NOT NULL,     -- Sealer.account_hash("", account): no domain
    pwd_version   INTEGER,           -- unicodePwd metadata version (or pwdLastSet), NULL: unknown
    version_kind  TEXT,              -- 'meta' | 'pwdlastset' | NULL
    captured_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX captures_account ON captures (account_hash, captured_at);
CREATE INDEX captures_age ON captures (captured_at);
"""

# v5 (issue 10, item 5): supersede by source order, not arrival. Each delivery carries a
# copy of its change's source time, host and sequence (as it carries account_hash) so the
# supersede rule reads one index, as the arrival rule did: docs/queue.md "Order and
# supersede". NULLs become '' and -1 so row values compare (a NULL compares to nothing).
# ``pruned_order`` keeps, per backend and account, the source order of the newest
# delivered change that was pruned, as long as its event id is remembered: a still older
# change arriving later is superseded by it too.
_V5 = """
ALTER TABLE deliveries ADD COLUMN src_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN src_host TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN src_seq INTEGER NOT NULL DEFAULT -1;
UPDATE deliveries SET
    src_at = (SELECT c.changed_at_ms FROM changes c WHERE c.id = deliveries.change_id),
    src_host = (SELECT COALESCE(c.source_host, '') FROM changes c
                WHERE c.id = deliveries.change_id),
    src_seq = (SELECT COALESCE(c.sequence, -1) FROM changes c WHERE c.id = deliveries.change_id);
DROP INDEX deliveries_account;
CREATE INDEX deliveries_order ON deliveries
    (backend, account_hash, src_at, src_host, src_seq, change_id);
CREATE TABLE pruned_order (
    backend       TEXT NOT NULL,
    account_hash  BLOB NOT NULL,
    src_at        INTEGER NOT NULL,
    src_host      TEXT NOT NULL,
    src_seq       INTEGER NOT NULL,
    change_id     INTEGER NOT NULL,
    seen_at       REAL NOT NULL,
    PRIMARY KEY (backend, account_hash)
) WITHOUT ROWID;
CREATE INDEX pruned_order_age ON pruned_order (seen_at)
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)
LATEST = len(MIGRATIONS)


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the database to ``len(migrations)``; returns the version it was at before.

    The connection must be in autocommit mode (``isolation_level=None``). A database
    that holds tables but no ``schema_migrations`` is another program's: refused untouched.
    """
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_migrations" not in tables:
        raise QueueError("the database holds tables that are not adsync's: not an adsync queue")
    before = schema_version(conn)
    if before > len(migrations):
        raise QueueError(
            f"the queue database is at schema version {before}, newer than this adsync "
            f"({len(migrations)}); upgrade adsync"
        )
    for version in range(before + 1, len(migrations) + 1):
        with transaction(conn):
            for statement in _split(migrations[version - 1]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
    return before


# --- helpers ---------------------------------------------------------------------------

_CHUNK = 500
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# --- appends ---------------------------------------------------------------------------


def known_event_ids(conn: sqlite3.Connection, event_ids: Sequence[bytes]) -> set[bytes]:
    known: set[bytes] = set()
    for chunk in _chunks(event_ids):
        marks = _marks(len(chunk))
        for table in ("changes", "seen_events"):
            sql = f"SELECT event_id FROM {table} WHERE event_id IN ({marks})"
            known.update(bytes(r[0]) for r in conn.execute(sql, chunk))
    return known


_CHANGE_COLUMNS = (
    "id, event_id, key_id, account_hash, account_sealed, password_sealed, guid_sealed,"
    " domain, source_host, rid, changed_at_ms, sequence, received_at"
)
_CHANGE_ROW = "(" + _marks(13) + ")"
_ROWS_PER_INSERT = 2000  # 13 x 2000 bound values stay under SQLite's limit of 32766


class Inserted(NamedTuple):
    flags: list[bool]  # per change, in order: True where inserted (False: a known event id)
    dropped: int  # passwords of older changes dropped because these superseded them


def insert_changes(
    conn: sqlite3.Connection,
    items: Sequence[SealedChange],
    now: float,
    expire_after: Mapping[str, float],
) -> Inserted:
    """Insert new changes and one pending delivery per backend, then supersede the
    pending rows they make older (``supersede_older``).

    A few statements per batch, not one per row: each statement releases and
    retakes the GIL, and retaking it can wait for a busy event loop.
    """
    known = known_event_ids(conn, [it.event_id for it in items])
    first_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()[0]) + 1
    keep_password = bool(expire_after)
    values: list[object] = []
    inserted: list[bool] = []
    cid = first_id
    for it in items:
        if it.event_id in known:
            inserted.append(False)
            continue
        known.add(it.event_id)
        inserted.append(True)
        values += (
            cid,
            it.event_id,
            it.key_id,
            it.account_hash,
            it.account,
            it.password if keep_password else None,
            it.guid,
            it.domain,
            it.source_host,
            it.rid,
            it.changed_at_ms,
            it.sequence,
            now,
        )
        cid += 1
    per_statement = _ROWS_PER_INSERT * 13
    for start in range(0, len(values), per_statement):
        chunk = values[start : start + per_statement]
        conn.execute(
            f"INSERT INTO changes ({_CHANGE_COLUMNS}) VALUES "
            + ",".join([_CHANGE_ROW] * (len(chunk) // 13)),
            chunk,
        )
    if cid > first_id and expire_after:
        # The new ids are exactly first_id .. cid-1: one statement fans them out.
        backends = list(expire_after.items())
        conn.execute(
            "WITH b(backend, ttl) AS (VALUES " + ",".join(["(?,?)"] * len(backends)) + ")"
            " INSERT INTO deliveries (change_id, backend, account_hash, state,"
            " next_attempt_at, expires_at, created_at, updated_at, src_at, src_host, src_seq)"
            " SELECT c.id, b.backend, c.account_hash, 'pending', ?, ? + b.ttl, ?, ?,"
            " c.changed_at_ms, COALESCE(c.source_host, ''), COALESCE(c.sequence, -1)"
            " FROM changes c, b WHERE c.id BETWEEN ? AND ? ORDER BY c.id, b.backend",
            [*(v for pair in backends for v in pair), now, now, now, now, first_id, cid - 1],
        )
    dropped = 0
    if cid > first_id:
        conn.execute("UPDATE counters SET appended = appended + ? WHERE id = 1", (cid - first_id,))
        if expire_after:
            dropped = supersede_older(conn, first_id, cid - 1, now)
    return Inserted(inserted, dropped)


_SUPERSEDE_OLDER = """
UPDATE deliveries SET state = 'superseded', last_outcome = ?, last_error = ?, updated_at = ?
WHERE state = 'pending' AND (change_id, backend) IN (
    SELECT o.change_id, o.backend FROM deliveries n
    JOIN deliveries o ON o.backend = n.backend AND o.account_hash = n.account_hash
        AND (o.src_at, o.src_host, o.src_seq, o.change_id)
            < (n.src_at, n.src_host, n.src_seq, n.change_id)
    WHERE n.change_id BETWEEN ? AND ? AND o.state = 'pending')
RETURNING change_id
"""


def supersede_older(conn: sqlite3.Connection, first_id: int, last_id: int, now: float) -> int:
    """Supersede the pending rows that the changes ``first_id..last_id`` make older.

    The claim would supersede them when they came due (the same rule: a newer row of
    the account is pending); done when the newer change is stored, an older password is
    dropped at once, a backlog holds only what will be sent, and a target that comes
    back after an outage finds no pile to sort through in one long transaction.
    Rows in flight are never touched. Returns the passwords dropped.
    """
    _, outcome, error = _SUPERSEDED
    ids = [r[0] for r in conn.execute(_SUPERSEDE_OLDER, (outcome, error, now, first_id, last_id))]
    return drop_passwords_if_done(conn, sorted(set(ids))) if ids else 0


def appended(conn: sqlite3.Connection) -> int:
    """Changes this database ever stored (``counters``); what ``<db>.acked`` is checked against.

    0 for a database without the table (empty, or older than v3). Only reads: it
    runs before ``configure`` and ``migrate`` on a database that may be refused.
    """
    table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'counters'"
    if conn.execute(table).fetchone() is None:
        return 0
    return int(conn.execute("SELECT appended FROM counters WHERE id = 1").fetchone()[0])


def pending_changes(conn: sqlite3.Connection) -> int:
    """Changes whose password is still held (what ``max_pending`` counts). Autocommit."""
    return int(
        conn.execute("SELECT COUNT(*) FROM changes WHERE password_sealed IS NOT NULL").fetchone()[0]
    )


# --- claims and outcomes -----------------------------------------------------------------


def finish(
    conn: sqlite3.Connection,
    backend: str,
    change_id: int,
    state: DeliveryState,
    outcome: str,
    error: str,
    now: float,
) -> int:
    """Move a delivery to a terminal state; returns passwords dropped (0 or 1)."""
    _set_state(conn, backend, [change_id], (state, outcome, error), now)
    return drop_passwords_if_done(conn, [change_id])


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    change_id: int
    account_hash: bytes
    attempts: int
    rejections: int
    first_unknown_user_at: float | None
    expires_at: float
    event_id: bytes
    key_id: int
    account_sealed: bytes
    password_sealed: bytes | None
    guid_sealed: bytes | None
    domain: str
    source_host: str | None
    rid: int | None
    changed_at_ms: int
    sequence: int | None
    received_at: float


@dataclass(frozen=True, slots=True)
class ClaimResult:
    rows: list[ClaimedRow]
    next_due: float | None
    finished: int
    dropped: int


_CANDIDATES = """
SELECT d.change_id, d.account_hash, d.expires_at,
       EXISTS (SELECT 1 FROM deliveries n WHERE n.backend = d.backend
               AND n.account_hash = d.account_hash
               AND (n.src_at, n.src_host, n.src_seq, n.change_id)
                   > (d.src_at, d.src_host, d.src_seq, d.change_id)
               AND n.state IN ('pending', 'in_flight', 'delivered'))
       OR EXISTS (SELECT 1 FROM pruned_order p WHERE p.backend = d.backend
                  AND p.account_hash = d.account_hash
                  AND (p.src_at, p.src_host, p.src_seq, p.change_id)
                      > (d.src_at, d.src_host, d.src_seq, d.change_id)) AS has_newer
FROM deliveries d
WHERE d.backend = ? AND d.state = 'pending' AND d.next_attempt_at <= ?
  AND NOT EXISTS (SELECT 1 FROM deliveries f WHERE f.backend = d.backend
                  AND f.account_hash = d.account_hash AND f.state = 'in_flight')
ORDER BY d.next_attempt_at, d.change_id LIMIT ?
"""

_NEXT_DUE = """
SELECT MIN(d.next_attempt_at, d.expires_at) FROM deliveries d
WHERE d.backend = ? AND d.state = 'pending'
  AND NOT EXISTS (SELECT 1 FROM deliveries f WHERE f.backend = d.backend
                  AND f.account_hash = d.account_hash AND f.state = 'in_flight')
ORDER BY d.next_attempt_at LIMIT 1
"""

_LOAD = """
SELECT d.change_id, d.account_hash, d.attempts, d.rejections, d.first_unknown_user_at,
       d.expires_at, c.event_id, c.key_id, c.account_sealed, c.password_sealed, c.guid_sealed,
       c.domain, c.source_host, c.rid, c.changed_at_ms, c.sequence, c.received_at
FROM deliveries d JOIN changes c ON c.id = d.change_id
WHERE d.backend = ? AND d.change_id IN ({marks})
"""

_SUPERSEDED = (
    DeliveryState.SUPERSEDED,
    "superseded",
    "a newer change for this account replaced it",
)
_EXPIRED = (DeliveryState.FAILED, "expired", "not delivered before expire_after")


def _set_state(
    conn: sqlite3.Connection,
    backend: str,
    change_ids: Sequence[int],
    state: tuple[DeliveryState, str, str],
    now: float,
) -> None:
    """``finish`` for many rows of one backend, a statement per chunk (passwords not dropped)."""
    for chunk in _chunks(change_ids):
        conn.execute(
            "UPDATE deliveries SET state = ?, last_outcome = ?, last_error = ?, updated_at = ?"
            f" WHERE backend = ? AND change_id IN ({_marks(len(chunk))})",
            (*state, now, backend, *chunk),
        )


def drop_passwords_if_done(conn: sqlite3.Connection, change_ids: Sequence[int]) -> int:
    """Null each sealed password no delivery needs any more; returns how many went now."""
    dropped = 0
    for chunk in _chunks(change_ids):
        cur = conn.execute(
            "UPDATE changes SET password_sealed = NULL"
            f" WHERE id IN ({_marks(len(chunk))}) AND password_sealed IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM deliveries WHERE change_id = changes.id"
            " AND state IN ('pending', 'in_flight'))",
            chunk,
        )
        dropped += cur.rowcount
    return dropped


def claim(conn: sqlite3.Connection, backend: str, limit: int, now: float) -> ClaimResult:
    """Take up to ``limit`` due deliveries of ``backend`` into in_flight.

    Per account only the newest change in source order is ever sent: a due row with
    a newer row (pending, in flight or delivered; newer by the source's time, host
    and sequence, not by arrival: docs/queue.md) is superseded instead; an expired row is
    failed; an account with a delivery in flight is skipped. A few statements
    per call, not a few per row: each statement costs the sqlite thread a wait
    for the GIL.
    """
    claimed: list[int] = []
    finished: list[int] = []
    accounts: set[bytes] = set()
    while len(claimed) < limit:
        # A few spare rows for an account taken twice or a row superseded or expired here;
        # each row read costs its subqueries, so not many (appends supersede most: they
        # never reach a claim).
        want = limit - len(claimed) + 4
        candidates = conn.execute(_CANDIDATES, (backend, now, want)).fetchall()
        superseded: list[int] = []
        expired: list[int] = []
        taken: list[int] = []
        for change_id, account_hash, expires_at, has_newer in candidates:
            if account_hash in accounts:
                continue
            if has_newer:
                superseded.append(change_id)
            elif expires_at <= now:
                expired.append(change_id)
            else:
                accounts.add(account_hash)
                taken.append(change_id)
                if len(claimed) + len(taken) >= limit:
                    break
        # Applied before the next page is read, so that page does not return them again.
        _set_state(conn, backend, superseded, _SUPERSEDED, now)
        _set_state(conn, backend, expired, _EXPIRED, now)
        for chunk in _chunks(taken):
            conn.execute(
                "UPDATE deliveries SET state = 'in_flight', updated_at = ?"
                f" WHERE backend = ? AND change_id IN ({_marks(len(chunk))})",
                (now, backend, *chunk),
            )
        claimed += taken
        finished += superseded + expired
        progress = superseded or expired or taken
        if not progress or len(candidates) < want:
            break
    dropped = drop_passwords_if_done(conn, finished)
    next_due = None  # a full claim: the lane claims again when its window runs low
    if len(claimed) < limit:
        row = conn.execute(_NEXT_DUE, (backend,)).fetchone()
        next_due = None if row is None or row[0] is None else float(row[0])
    loaded: dict[int, ClaimedRow] = {}
    for chunk in _chunks(claimed):
        sql = _LOAD.format(marks=_marks(len(chunk)))
        for r in conn.execute(sql, (backend, *chunk)):
            loaded[r[0]] = ClaimedRow(*r)
    rows = [loaded[cid] for cid in claimed]
    return ClaimResult(rows, next_due, len(finished), dropped)


_RECORD_ROW = "(" + _marks(9) + ")"
_RECORD_ROWS = 1000  # 9 x 1000 bound values stay under SQLite's limit of 32766


def record_many(conn: sqlite3.Connection, attempts: Sequence[Attempt], now: float) -> int:
    """Store each attempt's result on its in_flight row: one statement per 1,000 rows.

    Not ``executemany``: it steps once per row, and each step releases and retakes the
    GIL, which waits for a busy event loop (27 µs of the sqlite thread per row in a
    drain; bench/README.md, "Fifth pass"). Returns the passwords no delivery needs any
    more, nulled now. Nothing is read back: the receipt time a delivered row's latency
    needs came with its claim.
    """
    for chunk in _chunks(attempts, _RECORD_ROWS):
        values: list[object] = []
        for a in chunk:
            d = a.decision
            values += (a.claim.change_id, a.claim.backend, d.state, d.attempts, d.rejections,
                       d.first_unknown_user_at, d.next_attempt_at, a.outcome, a.error)  # fmt: skip
        conn.execute(
            "WITH v(change_id, backend, state, attempts, rejections, unknown_at, next_at,"
            " outcome, error) AS (VALUES " + ",".join([_RECORD_ROW] * len(chunk)) + ")"
            " UPDATE deliveries SET state = v.state, attempts = v.attempts,"
            " rejections = v.rejections, first_unknown_user_at = v.unknown_at,"
            " next_attempt_at = COALESCE(v.next_at, deliveries.next_attempt_at),"
            " last_outcome = v.outcome, last_error = v.error, updated_at = ?"
            " FROM v WHERE deliveries.change_id = v.change_id"
            " AND deliveries.backend = v.backend AND deliveries.state = 'in_flight'",
            [*values, now],
        )
    ended = sorted({a.claim.change_id for a in attempts if a.decision.state not in ACTIVE_STATES})
    return drop_passwords_if_done(conn, ended)


def release(conn: sqlite3.Connection, backend: str, change_ids: Sequence[int], now: float) -> None:
    """Give in_flight rows back (stop past the grace): no attempt is counted."""
    conn.executemany(
        "UPDATE deliveries SET state = 'pending', updated_at = ?"
        " WHERE change_id = ? AND backend = ? AND state = 'in_flight'",
        [(now, cid, backend) for cid in change_ids],
    )


def recover_in_flight(conn: sqlite3.Connection, now: float) -> int:
    """After a crash: rows that were in flight go back to pending (at-least-once)."""
    cur = conn.execute(
        "UPDATE deliveries SET state = 'pending', updated_at = ? WHERE state = 'in_flight'",
        (now,),
    )
    return cur.rowcount


# --- the operator's actions --------------------------------------------------------------


def _filters(backend: str | None, event_ids: Sequence[bytes] | None) -> tuple[str, list[object]]:
    where = ""
    args: list[object] = []
    if backend is not None:
        where += " AND d.backend = ?"
        args.append(backend)
    if event_ids is not None:
        where += (
            " AND d.change_id IN (SELECT id FROM changes WHERE event_id IN "
            f"({_marks(len(event_ids))}))"
        )
        args.extend(event_ids)
    return where, args


def retry_failed(
    conn: sqlite3.Connection,
    backend: str | None,
    event_ids: Sequence[bytes] | None,
    now: float,
) -> int:
    """Failed rows whose change still holds its password go back to pending, fresh."""
    where, args = _filters(backend, event_ids)
    sql = (
        "UPDATE deliveries AS d SET state = 'pending', attempts = 0, rejections = 0,"
        " first_unknown_user_at = NULL, next_attempt_at = ?,"
        " expires_at = ? + (d.expires_at - d.created_at),"
        " last_outcome = 'retry', last_error = 'retry requested by the operator', updated_at = ?"
        " WHERE d.state = 'failed' AND d.change_id IN"
        " (SELECT id FROM changes WHERE password_sealed IS NOT NULL)" + where
    )
    return conn.execute(sql, [now, now, now, *args]).rowcount


def purge_failed(
    conn: sqlite3.Connection,
    backend: str | None,
    event_ids: Sequence[bytes] | None,
    older_than: float | None,
    now: float,
    states: Sequence[DeliveryState] = (DeliveryState.FAILED,),
) -> int:
    """Delete rows in ``states`` (failed ones unless told otherwise); a change left
    without deliveries goes (its id stays seen)."""
    where, args = _filters(backend, event_ids)
    if older_than is not None:
        where += " AND d.updated_at < ?"
        args.append(older_than)
    in_states = "d.state IN (" + ",".join("?" * len(states)) + ")"
    args = [*states, *args]
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT d.change_id FROM deliveries d WHERE " + in_states + where,
            args,
        )
    ]
    count = conn.execute(
        "DELETE FROM deliveries AS d WHERE " + in_states + where,
        args,
    ).rowcount
    drop_passwords_if_done(conn, ids)
    _delete_orphans(conn, ids, now)
    return count


def _delete_orphans(conn: sqlite3.Connection, change_ids: Sequence[int], now: float) -> None:
    orphan = "NOT EXISTS (SELECT 1 FROM deliveries WHERE change_id = changes.id)"
    for cid in change_ids:
        conn.execute(
            "INSERT OR IGNORE INTO seen_events (event_id, seen_at)"
            f" SELECT event_id, ? FROM changes WHERE id = ? AND {orphan}",
            (now, cid),
        )
        conn.execute(f"DELETE FROM changes WHERE id = ? AND {orphan}", (cid,))


# Per backend and account, the greatest source order among the delivered rows pruned now
# (or kept from before): what a later, older change is still superseded by.
_KEEP_ORDER = """
INSERT INTO pruned_order (backend, account_hash, src_at, src_host, src_seq, change_id, seen_at)
SELECT backend, account_hash, src_at, src_host, src_seq, change_id, ? FROM deliveries
WHERE state = 'delivered' AND change_id IN ({marks})
ON CONFLICT (backend, account_hash) DO UPDATE SET src_at = excluded.src_at,
    src_host = excluded.src_host, src_seq = excluded.src_seq,
    change_id = excluded.change_id, seen_at = excluded.seen_at
WHERE (excluded.src_at, excluded.src_host, excluded.src_seq, excluded.change_id)
    > (pruned_order.src_at, pruned_order.src_host, pruned_order.src_seq, pruned_order.change_id)
"""


def prune_completed(
    conn: sqlite3.Connection, received_before: float, forget_before: float, now: float
) -> int:
    """Delete changes all of whose deliveries succeeded, were superseded or skipped.

    Their event ids stay in ``seen_events`` until ``forget_before`` so a late
    resend is still recognised as a duplicate, and the source order of each
    account's newest delivered change stays in ``pruned_order`` as long, so a
    later, older change is still superseded.
    """
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM changes c WHERE c.received_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM deliveries d WHERE d.change_id = c.id"
            " AND d.state NOT IN ('delivered', 'superseded', 'skipped'))",
            (received_before,),
        )
    ]
    conn.executemany(
        "INSERT OR IGNORE INTO seen_events (event_id, seen_at)"
        " SELECT event_id, ? FROM changes WHERE id = ?",
        [(now, cid) for cid in ids],
    )
    for chunk in _chunks(ids):
        conn.execute(_KEEP_ORDER.format(marks=_marks(len(chunk))), (now, *chunk))
    conn.executemany("DELETE FROM changes WHERE id = ?", [(cid,) for cid in ids])
    conn.execute("DELETE FROM seen_events WHERE seen_at < ?", (forget_before,))
    conn.execute("DELETE FROM pruned_order WHERE seen_at < ?", (forget_before,))
    return len(ids)


# --- what the operator and the metrics read (autocommit reads, one hop each) --------------


def depth(conn: sqlite3.Connection) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    """Rows by backend and state, and the oldest unfinished row's creation time per backend.

    Both in one hop on the sqlite thread: a read across several hops could
    interleave with the group writer's transactions.
    """
    counts: dict[str, dict[str, int]] = {}
    for backend, state, n in conn.execute(
        "SELECT backend, state, COUNT(*) FROM deliveries GROUP BY backend, state"
    ).fetchall():
        counts.setdefault(str(backend), {})[str(state)] = int(n)
    oldest: dict[str, float] = {}
    for backend, created in conn.execute(
        "SELECT backend, MIN(created_at) FROM deliveries WHERE state IN (?, ?) GROUP BY backend",
        ACTIVE_STATES,
    ).fetchall():
        if created is not None:
            oldest[str(backend)] = float(created)
    return counts, oldest


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    event_id: bytes
    backend: str
    state: str
    key_id: int
    account_sealed: bytes
    domain: str
    attempts: int
    rejections: int
    received_at: float
    updated_at: float
    next_attempt_at: float
    expires_at: float
    last_outcome: str | None
    last_error: str | None
    password_held: bool


def deliveries(
    conn: sqlite3.Connection, backend: str | None, state: DeliveryState | None, limit: int
) -> list[DeliveryRow]:
    """Delivery rows with their change's sealed account, newest first."""
    where = []
    args: list[Any] = []
    if backend is not None:
        where.append("d.backend = ?")
        args.append(backend)
    if state is not None:
        where.append("d.state = ?")
        args.append(state)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    query = (
        "SELECT c.event_id, d.backend, d.state, c.key_id, c.account_sealed, c.domain,"
        " d.attempts, d.rejections, c.received_at, d.updated_at, d.next_attempt_at,"
        " d.expires_at, d.last_outcome, d.last_error, c.password_sealed IS NOT NULL"
        " FROM deliveries d JOIN changes c ON c.id = d.change_id"
        + clause
        + " ORDER BY d.change_id DESC, d.backend LIMIT ?"
    )
    args.append(int(limit))
    return [
        DeliveryRow(
            event_id=bytes(r[0]),
            backend=str(r[1]),
            state=str(r[2]),
            key_id=int(r[3]),
            account_sealed=bytes(r[4]),
            domain=str(r[5]),
            attempts=int(r[6]),
            rejections=int(r[7]),
            received_at=float(r[8]),
            updated_at=float(r[9]),
            next_attempt_at=float(r[10]),
            expires_at=float(r[11]),
            last_outcome=r[12],
            last_error=r[13],
            password_held=bool(r[14]),
        )
        for r in conn.execute(query, args)
    ]


def touch(conn: sqlite3.Connection) -> None:
    """The health probe's write: rewrites one row with its own value (changes nothing)."""
    conn.execute(
        "UPDATE schema_migrations SET applied_at = applied_at"
        " WHERE version = (SELECT MAX(version) FROM schema_migrations)"
    )


def probe_space(conn: sqlite3.Connection, size: int) -> None:
    """The health probe's room check: commit a fresh ``size``-byte row in its own transaction.

    Its pages are new WAL frames, as an append's are, so it fails with SQLITE_FULL
    where an append would; rewriting one existing row (``touch``) still fits in the
    slack a refused append leaves at the WAL's end. Own transaction: the probe must
    never make an append's transaction fail. Autocommit connection.
    """
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO health_probe (id, filler) VALUES (1, zeroblob(?))", (size,)
        )


# --- keys --------------------------------------------------------------------------------


def key_table(conn: sqlite3.Connection) -> list[tuple[int, str, bytes, bool]]:
    """Every key: id, purpose, wrapped key, active."""
    return [
        (int(k), str(p), bytes(w), bool(a))
        for k, p, w, a in conn.execute(
            "SELECT key_id, purpose, wrapped, active FROM keys ORDER BY key_id"
        )
    ]


def has_changes(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM changes LIMIT 1").fetchone() is not None


def add_keys(conn: sqlite3.Connection, keys: Sequence[tuple[int, str, bytes]], now: float) -> None:
    """Insert active keys (id, purpose, wrapped)."""
    conn.executemany(
        "INSERT INTO keys (key_id, purpose, wrapped, created_at, active) VALUES (?,?,?,?,1)",
        [(k, p, w, now) for k, p, w in keys],
    )


def next_key_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(key_id), 0) FROM keys").fetchone()[0]) + 1


def deactivate_others(conn: sqlite3.Connection, purpose: str, key_id: int) -> None:
    """Make ``key_id`` the only active key of ``purpose``."""
    conn.execute("UPDATE keys SET active = 0 WHERE purpose = ? AND key_id != ?", (purpose, key_id))


def set_wrapped(conn: sqlite3.Connection, wrapped: Sequence[tuple[int, bytes]]) -> None:
    """Store keys wrapped anew (key id, wrapped key)."""
    conn.executemany("UPDATE keys SET wrapped = ? WHERE key_id = ?", [(w, k) for k, w in wrapped])


def key_rows(conn: sqlite3.Connection) -> list[KeyRow]:
    rows = conn.execute(
        "SELECT key_id, purpose, active, created_at FROM keys ORDER BY key_id"
    ).fetchall()
    return [KeyRow(int(k), str(p), bool(a), float(c)) for k, p, a, c in rows]


KeyFingerprint = tuple[tuple[int, str, int], ...]


def fingerprint(conn: sqlite3.Connection) -> KeyFingerprint:
    """What changes when a key is added, activated or retired (cheap: a handful of rows)."""
    rows = conn.execute("SELECT key_id, purpose, active FROM keys ORDER BY key_id").fetchall()
    return tuple((int(k), str(p), int(a)) for k, p, a in rows)


def rows_per_key(conn: sqlite3.Connection) -> dict[int, int]:
    return {
        int(k): int(n)
        for k, n in conn.execute("SELECT key_id, COUNT(*) FROM changes GROUP BY key_id")
    }


SealedRow = tuple[int, bytes, int, bytes, bytes | None, bytes | None]


def rows_not_on_key(
    conn: sqlite3.Connection, key_id: int, after_id: int, limit: int
) -> list[SealedRow]:
    """Up to ``limit`` changes (id > ``after_id``) sealed under another key: id, event id,
    key id, sealed account, password and guid."""
    return [
        (int(c), bytes(e), int(k), bytes(a), _blob(p), _blob(g))
        for c, e, k, a, p, g in conn.execute(
            "SELECT id, event_id, key_id, account_sealed, password_sealed, guid_sealed"
            " FROM changes WHERE id > ? AND key_id != ? ORDER BY id LIMIT ?",
            (after_id, key_id, limit),
        )
    ]


def sealed_rows(conn: sqlite3.Connection) -> Iterator[SealedRow]:
    """Every change's sealed columns, in id order (a cursor: not all held in memory)."""
    for c, e, k, a, p, g in conn.execute(
        "SELECT id, event_id, key_id, account_sealed, password_sealed, guid_sealed"
        " FROM changes ORDER BY id"
    ):
        yield int(c), bytes(e), int(k), bytes(a), _blob(p), _blob(g)


def reseal_rows(
    conn: sqlite3.Connection,
    updates: Sequence[tuple[int, bytes, bytes | None, bytes | None, int, int]],
) -> None:
    """(new key id, account, password, guid, change id, old key id): a row is rewritten only
    if it still has the key it was read with, so a concurrent write is never overwritten."""
    conn.executemany(
        "UPDATE changes SET key_id = ?, account_sealed = ?, password_sealed = ?,"
        " guid_sealed = ? WHERE id = ? AND key_id = ?",
        updates,
    )


def retire_unused(conn: sqlite3.Connection, active_key_id: int) -> list[int]:
    """Delete inactive data keys no change uses any more; returns their ids."""
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


def _blob(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


# --- capture history (issue 14): no password, kept for the audit window ---------------------


@dataclass(frozen=True, slots=True)
class CaptureRow:
    event_id: bytes
    account_hash: bytes
    pwd_version: int | None
    version_kind: str | None
    captured_at: float


def insert_captures(conn: sqlite3.Connection, rows: Sequence[CaptureRow]) -> None:
    """Record captures; a repeat of an event id keeps the first row (its version is older)."""
    conn.executemany(
        "INSERT OR IGNORE INTO captures"
        " (event_id, account_hash, pwd_version, version_kind, captured_at) VALUES (?,?,?,?,?)",
        [(r.event_id, r.account_hash, r.pwd_version, r.version_kind, r.captured_at) for r in rows],
    )


def capture_of(conn: sqlite3.Connection, event_id: bytes) -> CaptureRow | None:
    row = conn.execute(
        "SELECT event_id, account_hash, pwd_version, version_kind, captured_at"
        " FROM captures WHERE event_id = ?",
        (event_id,),
    ).fetchone()
    return None if row is None else CaptureRow(bytes(row[0]), bytes(row[1]), *row[2:])


def captures_since(conn: sqlite3.Connection, since: float) -> list[CaptureRow]:
    return [
        CaptureRow(bytes(r[0]), bytes(r[1]), r[2], r[3], r[4])
        for r in conn.execute(
            "SELECT event_id, account_hash, pwd_version, version_kind, captured_at"
            " FROM captures WHERE captured_at >= ? ORDER BY captured_at",
            (since,),
        )
    ]


def prune_captures(conn: sqlite3.Connection, before: float) -> int:
    return conn.execute("DELETE FROM captures WHERE captured_at < ?", (before,)).rowcount
