"""The daemon's queue, observed: outcome hooks, depth queries, a write probe, live fan-out.

A subclass rather than hooks inside the queue and the dispatcher: every finished
delivery attempt passes through ``Queue.record``, so observing it here sees what
the lanes decided (including ``expired``) without touching the dispatch code.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adsync.dispatch.retry import Decision
from adsync.observe.metrics import QueueDepth
from adsync.queue.models import Claim, DeliveryState
from adsync.queue.store import Queue, _run

# backend, outcome label, next state, seconds from receipt (delivered only), scrubbed reason
RecordHook = Callable[[str, str, str, float | None, str], None]

_UNFINISHED = (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value)


class WatchedQueue(Queue):
    """``Queue`` plus what operations need. Open with ``await WatchedQueue.open(...)``."""

    on_record: RecordHook | None = None
    path: Path | None = None

    async def record(self, claim: Claim, decision: Decision, outcome: str, error: str) -> None:
        await super().record(claim, decision, outcome, error)
        hook = self.on_record
        if hook is None:
            return
        latency = None
        if outcome == "delivered":
            latency = await self._since_receipt(claim.change_id)
        hook(claim.backend, outcome, decision.state.value, latency, error)

    async def _since_receipt(self, change_id: int) -> float | None:
        try:
            row = await _run(
                self._db,
                lambda c: c.execute(
                    "SELECT received_at FROM changes WHERE id = ?", (change_id,)
                ).fetchone(),
            )
        except sqlite3.Error:
            return None
        return None if row is None else self._clock.time() - float(row[0])

    # --- depth ---------------------------------------------------------------------------

    async def depth(self) -> QueueDepth:
        """Counts by backend and state and the oldest unfinished row per backend.

        Both queries run in one hop on the sqlite thread: a cursor read across
        several hops could interleave with the group writer's transactions.
        """
        counts, oldest = await _run(self._db, _depth_rows)
        for backend in self.backends:
            counts.setdefault(backend, {})
        return QueueDepth(counts, oldest, self.pending_changes, self._clock.time())

    # --- health --------------------------------------------------------------------------

    async def write_probe(self) -> str | None:
        """None when the queue can take a write now, else why not.

        Two real checks: the files open for writing (a read-only mount or an
        immutable file refuses this even to root), and a transaction that
        rewrites one row with its own value commits through the group writer.
        """
        if self.path is not None:
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
            await asyncio.wait_for(self._writer.op(_touch), timeout=10.0)
        except TimeoutError:
            return "a write transaction did not commit within 10s"
        except sqlite3.Error as exc:
            return f"a write transaction failed ({_short(exc)})"
        except Exception as exc:
            return f"a write transaction failed ({type(exc).__name__})"
        return None

    # --- live fan-out --------------------------------------------------------------------

    def set_backends(self, names: Sequence[str], expire_after: Mapping[str, float]) -> None:
        """Changes appended from now on fan out to ``names``; rows already stored stay."""
        self._expire_after = {n: expire_after[n] for n in names}


def _depth_rows(conn: sqlite3.Connection) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    counts: dict[str, dict[str, int]] = {}
    for backend, state, n in conn.execute(
        "SELECT backend, state, COUNT(*) FROM deliveries GROUP BY backend, state"
    ).fetchall():
        counts.setdefault(str(backend), {})[str(state)] = int(n)
    oldest: dict[str, float] = {}
    for backend, created in conn.execute(
        "SELECT backend, MIN(created_at) FROM deliveries WHERE state IN (?, ?) GROUP BY backend",
        _UNFINISHED,
    ).fetchall():
        if created is not None:
            oldest[str(backend)] = float(created)
    return counts, oldest


def _touch(conn: sqlite3.Connection) -> Any:
    conn.execute(
        "UPDATE schema_migrations SET applied_at = applied_at"
        " WHERE version = (SELECT MAX(version) FROM schema_migrations)"
    )
    return None


def _short(exc: sqlite3.Error) -> str:
    text = str(exc)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["RecordHook", "WatchedQueue"]
