"""Crash safety: every id a process printed after its append returned survives SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.testing.leaks import REGISTRY

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("append_burst.py")


def run_and_kill(db: Path, key: Path, kill_after: int) -> list[str]:
    """Start the child, SIGKILL it after ``kill_after`` ACKed ids; return every printed id."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    printed: list[str] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        while len(printed) < kill_after:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err
    # a line cut by the kill is not a complete id (it was never fully printed)
    printed.extend(x for x in rest.splitlines() if len(x) == 32)
    return printed


@pytest.mark.parametrize("round_", [1, 2, 3])
async def test_every_acked_id_survives_sigkill(tmp_path: Path, round_: int) -> None:
    REGISTRY.watch(tmp_path)
    db, key = tmp_path / "queue.db", tmp_path / "master.key"
    acked: list[str] = []
    for _ in range(3):  # kill the same queue three times in a row
        acked += run_and_kill(db, key, kill_after=random.randint(300, 1500))
        with sqlite3.connect(db) as conn:
            stored = {bytes(r[0]).hex() for r in conn.execute("SELECT event_id FROM changes")}
        missing = [x for x in acked if x not in stored]
        assert missing == [], f"{len(missing)} ACKed ids lost"
        # and the queue opens again after the crash, with both deliveries per change (pending,
        # or superseded by a newer change of the account as that one was stored)
        queue = await Queue.open(db, FileKeyProvider(key), ["a", "b"], max_pending=10**9)
        status = await queue.status()
        await queue.close()
        a, b = status.counts["a"], status.counts["b"]
        assert a == b and sum(a.values()) == len(stored) >= len(acked)
        assert a["pending"] + a["superseded"] == len(stored)
    assert len(set(acked)) == len(acked)
