"""The queue's schema as numbered migrations, and the runner that applies them.

A migration is applied once, in order, inside one transaction together with
its row in ``schema_migrations``; a database newer than this code is refused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from adsync.queue.errors import QueueError

STATES = ("pending", "in_flight", "delivered", "failed", "superseded", "skipped")
ACTIVE_STATES = ("pending", "in_flight")

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

# v3 (issue 14): the 'skipped' state (SQLite cannot alter a CHECK: the table is rebuilt),
# and the capture history the gap audit and the stale-password guard read. A capture
# row holds no password: a keyed hash of the account, the password version the
# directory showed right after the change (NULL: unknown) and when.
_V3 = """
CREATE TABLE deliveries_v3 (
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
INSERT INTO deliveries_v3 SELECT * FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v3 RENAME TO deliveries;
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

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
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

    The connection must be in autocommit mode (``isolation_level=None``).
    """
    before = schema_version(conn)
    if before > len(migrations):
        raise QueueError(
            f"the queue database is at schema version {before}, newer than this adsync "
            f"({len(migrations)}); upgrade adsync"
        )
    for version in range(before + 1, len(migrations) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(migrations[version - 1]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return before
