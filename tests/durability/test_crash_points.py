"""Durability proven at crash points, not sampled at random times (docs/queue.md).

CI runs a seeded sample of the commit boundaries and sync boundaries of one scripted workload
(tests/durability/harness.py); ``bench/durability.py`` runs every one of them. Each crash is a
real SIGKILL of ``adsync run`` (at a commit boundary, through the test aid in
``adsync.queue.crashpoint``) or a real restart on the disk a power cut would have left (every
write since each file's last fsync dropped; tests/durability/syncfs.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .kill_runs import commit_kill, count_commits, pick, power_cuts, record, sync_boundaries

SEED = int(os.environ.get("ADSYNC_DURABILITY_SEED", "20261202"))
SAMPLE = int(os.environ.get("ADSYNC_DURABILITY_SAMPLE", "2"))


@pytest.mark.slow
async def test_kill_at_sampled_commit_boundaries_loses_no_acked_change(tmp_path: Path) -> None:
    total = await count_commits(tmp_path)
    assert total > 20, "the workload commits at start, on ingest, on delivery and on rotation"
    # The first commits (migrations, keys) and a sample of the rest, before and after.
    numbers = sorted({1, 2, *pick(list(range(3, total + 1)), SAMPLE, SEED)})
    for number in numbers:
        for before in (True, False):
            outcome = await commit_kill(tmp_path, number, before=before)
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
    for mode in ("ext4", "posix"):
        for outcome in await power_cuts(tmp_path, recording, chosen, mode=mode):
            assert outcome.verdict.ok, f"{outcome.point}: {outcome.verdict.summary()}"
