"""Fixtures for queue tests: real SQLite files in tmp_path, a key file, a fake clock."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adsync.clock import FakeClock
from adsync.plugin import Change
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

_counter = itertools.count(1)


def make_change(
    account: str = "alice", password: str | None = None, domain: str = "ADSYNC"
) -> Change:
    n = next(_counter)
    pw = password if password is not None else f"Qu3ue-Pässwörd-{n:05d}-€"
    REGISTRY.password(pw)
    return Change(
        event_id=os.urandom(16),
        account=account,
        password=Secret(pw),
        changed_at_ms=1_700_000_000_000 + n,
        domain=domain,
    )


@pytest.fixture
def new_change() -> Callable[..., Change]:
    return make_change


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    REGISTRY.watch(tmp_path)
    return tmp_path / "queue.db"


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyProvider:
    return FileKeyProvider(tmp_path / "master.key")


@pytest.fixture
async def queue(db_path: Path, keys: FileKeyProvider, clock: FakeClock) -> AsyncIterator[Queue]:
    q = await Queue.open(db_path, keys, ["soffid", "ldap"], max_pending=10_000, clock=clock)
    yield q
    await q.close()
