"""The queue's statements, as plain functions run on the sqlite thread.

Each function runs inside a transaction the group-commit writer opened; none
commits. They see only sealed bytes: nothing here can leak a password.
"""

# ruff: noqa: S608 - queries are built from fixed fragments and "?" placeholders only

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from adsync.queue.seal import SealedChange

_CHUNK = 500
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


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


def insert_changes(
    conn: sqlite3.Connection,
    items: Sequence[SealedChange],
    now: float,
    expire_after: Mapping[str, float],
) -> list[bool]:
    """Insert new changes and one pending delivery per backend; True where inserted.

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
            " next_attempt_at, expires_at, created_at, updated_at)"
            " SELECT c.id, b.backend, c.account_hash, 'pending', ?, ? + b.ttl, ?, ?"
            " FROM changes c, b WHERE c.id BETWEEN ? AND ? ORDER BY c.id, b.backend",
            [*(v for pair in backends for v in pair), now, now, now, now, first_id, cid - 1],
        )
    return inserted


def drop_password_if_done(conn: sqlite3.Connection, change_id: int) -> int:
    """Null the sealed password once no delivery needs it; 1 if it was dropped now."""
    return drop_passwords_if_done(conn, [change_id])


def finish(
    conn: sqlite3.Connection,
    backend: str,
    change_id: int,
    state: str,
    outcome: str,
    error: str,
    now: float,
) -> int:
    """Move a delivery to a terminal state; returns passwords dropped (0 or 1)."""
    _set_state(conn, backend, [change_id], (state, outcome, error), now)
    return drop_password_if_done(conn, change_id)


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


@dataclass(frozen=True, slots=True)
class ClaimResult:
    rows: list[ClaimedRow]
    next_due: float | None
    finished: int
    dropped: int


_CANDIDATES = """
SELECT d.change_id, d.account_hash, d.expires_at,
       EXISTS (SELECT 1 FROM deliveries n WHERE n.backend = d.backend
               AND n.account_hash = d.account_hash AND n.change_id > d.change_id
               AND n.state IN ('pending', 'in_flight', 'delivered')) AS has_newer
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
       c.domain, c.source_host, c.rid, c.changed_at_ms, c.sequence
FROM deliveries d JOIN changes c ON c.id = d.change_id
WHERE d.backend = ? AND d.change_id IN ({marks})
"""

_SUPERSEDED = ("superseded", "superseded", "a newer change for this account replaced it")
_EXPIRED = ("failed", "expired", "not delivered before expire_after")


def _set_state(
    conn: sqlite3.Connection,
    backend: str,
    change_ids: Sequence[int],
    state: tuple[str, str, str],
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
    """``drop_password_if_done`` for many changes; returns how many were dropped now."""
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

    Per account only the newest change is ever sent: a due row with a newer row
    (pending, in flight or delivered) is superseded instead; an expired row is
    failed; an account with a delivery in flight is skipped. A few statements
    per call, not a few per row: each statement costs the sqlite thread a wait
    for the GIL.
    """
    claimed: list[int] = []
    finished: list[int] = []
    accounts: set[bytes] = set()
    while len(claimed) < limit:
        want = (limit - len(claimed)) * 2 + 8
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
    row = conn.execute(_NEXT_DUE, (backend,)).fetchone()
    next_due = None if row is None or row[0] is None else float(row[0])
    loaded: dict[int, ClaimedRow] = {}
    for chunk in _chunks(claimed):
        sql = _LOAD.format(marks=_marks(len(chunk)))
        for r in conn.execute(sql, (backend, *chunk)):
            loaded[r[0]] = ClaimedRow(*r)
    rows = [loaded[cid] for cid in claimed]
    return ClaimResult(rows, next_due, len(finished), dropped)


def record(
    conn: sqlite3.Connection,
    backend: str,
    change_id: int,
    *,
    state: str,
    attempts: int,
    rejections: int,
    first_unknown_user_at: float | None,
    next_attempt_at: float | None,
    outcome: str,
    error: str,
    now: float,
) -> int:
    """Store an attempt's result on an in_flight row; returns passwords dropped."""
    conn.execute(
        "UPDATE deliveries SET state = ?, attempts = ?, rejections = ?,"
        " first_unknown_user_at = ?, next_attempt_at = COALESCE(?, next_attempt_at),"
        " last_outcome = ?, last_error = ?, updated_at = ?"
        " WHERE change_id = ? AND backend = ? AND state = 'in_flight'",
        (
            state,
            attempts,
            rejections,
            first_unknown_user_at,
            next_attempt_at,
            outcome,
            error,
            now,
            change_id,
            backend,
        ),
    )
    if state in ("pending", "in_flight"):
        return 0
    return drop_password_if_done(conn, change_id)


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
    states: Sequence[str] = ("failed",),
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


def prune_completed(
    conn: sqlite3.Connection, received_before: float, forget_before: float, now: float
) -> int:
    """Delete changes all of whose deliveries succeeded, were superseded or skipped.

    Their event ids stay in ``seen_events`` until ``forget_before`` so a late
    resend is still recognised as a duplicate.
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
    conn.executemany("DELETE FROM changes WHERE id = ?", [(cid,) for cid in ids])
    conn.execute("DELETE FROM seen_events WHERE seen_at < ?", (forget_before,))
    return len(ids)


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
