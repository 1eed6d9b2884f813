"""Fixtures for dispatcher tests: a real queue file, a fake clock, ordered cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from adsync.clock import FakeClock
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.testing.leaks import REGISTRY


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, FileKeyProvider]:
    REGISTRY.watch(tmp_path)
    return tmp_path / "queue.db", FileKeyProvider(tmp_path / "master.key")


@pytest.fixture
def open_queue(
    paths: tuple[Path, FileKeyProvider], clock: FakeClock
) -> Callable[[Sequence[str]], Awaitable[Queue]]:
    async def _open(backends: Sequence[str]) -> Queue:
        db, keys = paths
        return await Queue.open(db, keys, backends, max_pending=10_000, clock=clock)

    return _open


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Callable[[], Awaitable[None]]]]:
    """Async closers run at the end of a test, last first (dispatchers before queues)."""
    closers: list[Callable[[], Awaitable[None]]] = []
    yield closers
    for close in reversed(closers):
        await close()
