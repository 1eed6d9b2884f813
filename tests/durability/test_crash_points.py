"""Durability proven at crash points, not sampled at random times (docs/queue.md).

CI runs a seeded sample of the commit boundaries and sync boundaries of one scripted workload
(tests/durability/harness.py); ``bench/durability.py`` runs every one of them. Each crash is a
real SIGKILL of ``adsync run`` (at a commit boundary, through the test aid in
``adsync.queue.crashpoint``) or a real restart on the disk a power cut would have left (every
write since each file's last fsync dropped; tests/durability/syncfs.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

from .kill_runs import commit_kill, count_commits, pick, power_cuts, record, sync_boundaries

SEED = int(os.environ.get("ADSYNC_DURABILITY_SEED", "20261202"))
SAMPLE = int(os.environ.get("ADSYNC_DURABILITY_SAMPLE", "4"))
# Crash runs side by side: each has its own directory, targets and daemon, and mostly
# waits (a hanging target, retry back-off, restarts), as bench/durability.py's shards do.
SIDE_BY_SIDE = 4

T = TypeVar("T")


async def side_by_side(runs: Iterable[Awaitable[T]]) -> list[T]:
    """Every run, at most ``SIDE_BY_SIDE`` at a time; results in the order given."""
    slots = asyncio.Semaphore(SIDE_BY_SIDE)

    async def one(run: Awaitable[T]) -> T:
        async with slots:
            return await run

    return await asyncio.gather(*(one(r) for r in runs))


@pytest.mark.slow
async def test_kill_at_sampled_commit_boundaries_loses_no_acked_change(tmp_path: Path) -> None:
    total = await count_commits(tmp_path)
    assert total > 20, "the workload commits at start, on ingest, on delivery and on rotation"
    # The first commits (migrations, keys) and a sample of the rest, before and after.
    numbers = sorted({1, 2, *pick(list(range(3, total + 1)), SAMPLE, SEED)})
    runs = (commit_kill(tmp_path, n, before=before) for n in numbers for before in (True, False))
    for outcome in await side_by_side(runs):
        assert outcome.verdict.ok, f"{outcome.point}: {outcome.verdict.summary()}"


@pytest.mark.slow
async def test_power_cut_at_sampled_sync_boundaries_loses_no_acked_change(
    tmp_path: Path,
) -> None:
    recording = await record(tmp_path)
    points = sync_boundaries(recording)
    assert len(points) > 20
    assert len(recording.ledger.acked) > 100
    chosen = [*pick(points, SAMPLE, SEED), points[-1]]
    runs = (power_cuts(tmp_path, recording, [p], mode=m) for m in ("ext4", "posix") for p in chosen)
    for outcomes in await side_by_side(runs):
        for outcome in outcomes:
            assert outcome.verdict.ok, f"{outcome.point}: {outcome.verdict.summary()}"
