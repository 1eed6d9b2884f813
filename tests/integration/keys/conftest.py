"""Key rotation tests: real SQLite queues, key files, and the CLI as a subprocess."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from adsync.plugin import Change
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.daemon import base_config, idle_backend
from adsync.testing.leaks import REGISTRY

_counter = itertools.count(1)


def digest(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def make_change(account: str | None = None) -> tuple[Change, str]:
    """A change and the sha256 of its password (the test keeps only the digest)."""
    n = next(_counter)
    password = f"Rot-Pässwort-{n:05d}-{os.urandom(4).hex()}"
    REGISTRY.password(password)
    change = Change(
        event_id=os.urandom(16),
        account=account or f"rot{n}",
        password=Secret(password),
        changed_at_ms=1_700_000_000_000 + n,
        domain="KEYS",
    )
    return change, digest(password)


class Workdir:
    """A config (its one backend receives nothing) and its queue, key file and CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        REGISTRY.watch(path)
        self.config = base_config(path, {"idle": idle_backend(path)})
        self.config_path = path / "adsync.yaml"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.db = path / "queue.db"
        self.keys = FileKeyProvider(path / "master.key")

    async def open(self, backends: Sequence[str] = ("t",), *, operator: bool = False) -> Queue:
        return await Queue.open(
            self.db, self.keys, list(backends), max_pending=10**9, operator=operator
        )

    def cli_args(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "adsync", "keys", *args, "--config", str(self.config_path)]

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cli_args(*args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def work(tmp_path: Path) -> Workdir:
    return Workdir(tmp_path)


async def fill(queue: Queue, n: int) -> dict[bytes, str]:
    """Append ``n`` changes; returns event id -> password digest."""

    made = [make_change() for _ in range(n)]
    results = await queue.append_many([c for c, _ in made])
    assert all(r.status.value == "stored" for r in results), {r.status for r in results}
    return {c.event_id: d for c, d in made}


def row_keys(db: Path) -> dict[int, int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return {
            int(k): int(n)
            for k, n in conn.execute("SELECT key_id, COUNT(*) FROM changes GROUP BY key_id")
        }


def data_keys(db: Path) -> list[tuple[int, int]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [
            (int(k), int(a))
            for k, a in conn.execute(
                "SELECT key_id, active FROM keys WHERE purpose = 'data' ORDER BY key_id"
            )
        ]


async def password_digests(queue: Queue) -> dict[bytes, str]:
    """Open every held password with the queue's sealer; only digests leave this function."""
    from adsync.queue.seal import COL_PASSWORD

    sealer = queue.sealer

    def read(conn: Any) -> dict[bytes, str]:
        out = {}
        for eid, kid, sealed in conn.execute(
            "SELECT event_id, key_id, password_sealed FROM changes"
            " WHERE password_sealed IS NOT NULL"
        ):
            out[bytes(eid)] = digest(sealer.open(bytes(eid), COL_PASSWORD, kid, bytes(sealed)))
        return out

    return await queue.read(read)


Fill = Callable[[Queue, int], Any]
