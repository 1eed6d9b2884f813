"""No password in the queue's files, in any encoding, and none left once it is not needed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from adsync.clock import FakeClock
from adsync.dispatch.dispatcher import Dispatcher
from adsync.plugin import Backend, BackendConfig, Change, Outcome, RetryConfig
from adsync.queue.keys import FileKeyProvider
from adsync.queue.models import DeliveryState
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY, scan_paths


class Target(Backend[BackendConfig]):
    """Delivers, or answers ``failed`` and echoes the password back (as a careless plugin would)."""

    def __init__(self, name: str, fail: bool) -> None:
        super().__init__(name, BackendConfig(type="fake", retry=RetryConfig()))
        self.fail = fail
        self.seen = 0

    async def deliver(self, change: Change) -> Outcome:
        self.seen += 1
        if self.fail:
            return Outcome.failed(f"refused {change.account}: {change.password.reveal()}")
        return Outcome.delivered()


def queue_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def sealed_passwords(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT password_sealed FROM changes").fetchall()
    return [bytes(r[0]) for r in rows if r[0] is not None]


async def eventually(predicate: object, what: str) -> None:
    for _ in range(2000):
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_passwords_never_reach_the_files_and_leave_when_done(tmp_path: Path) -> None:
    REGISTRY.watch(tmp_path)
    db = tmp_path / "queue.db"
    clock = FakeClock()
    passwords = [REGISTRY.password(f"Leak-Check-Pässwörd-{i}-€✓") for i in range(40)]
    changes = [
        Change(os.urandom(16), f"user{i}", Secret(pw), 1_700_000_000_000 + i, domain="ADSYNC")
        for i, pw in enumerate(passwords)
    ]
    queue = await Queue.open(
        db, FileKeyProvider(tmp_path / "master.key"), ["hr", "idm"], max_pending=1000, clock=clock
    )
    for change in changes:
        await queue.append_many([change])
    blobs = sealed_passwords(db)
    assert len(blobs) == len(changes)
    # sealed, stored, nothing delivered yet: no plaintext anywhere (UTF-8, UTF-16-LE/BE)
    assert scan_paths(queue_files(db), passwords) == []

    hr, idm = Target("hr", fail=False), Target("idm", fail=True)
    dispatcher = Dispatcher(queue, {"hr": (hr, hr.config), "idm": (idm, idm.config)}, clock)
    await dispatcher.start()

    async def all_done() -> bool:
        status = await queue.status()
        return status.pending_changes == 0

    await eventually(all_done, "every delivery terminal")
    await dispatcher.stop(0)

    failed = await queue.list_deliveries(backend="idm", state=DeliveryState.FAILED, limit=100)
    assert len(failed) == len(changes)
    for info in failed:  # who, when, which, why — never the password
        assert info.account.startswith("user") and info.received_at and info.backend == "idm"
        assert info.last_error is not None and info.last_error.startswith("refused user")
        assert "***" in info.last_error
        assert not info.password_held
    assert scan_paths(queue_files(db), passwords) == []
    await queue.close()

    assert scan_paths(queue_files(db), passwords) == []
    assert sealed_passwords(db) == []
    # secure_delete + the WAL checkpoint at close: not even the ciphertexts are left
    data = b"".join(p.read_bytes() for p in queue_files(db))
    assert sum(blob in data for blob in blobs) == 0
