"""The test aid that kills the daemon at a commit boundary (adsync.queue.crashpoint)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import sqlite3, sys
from adsync.queue import sql
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("CREATE TABLE t (n INTEGER)")
for n in range(1, 4):
    with sql.transaction(conn):
        conn.execute("INSERT INTO t VALUES (?)", (n,))
"""


def run(tmp_path: Path, setting: str | None) -> tuple[int, list[int], str]:
    db = tmp_path / "t.db"
    count = tmp_path / "count"
    env = {**os.environ, "ADSYNC_TEST_COMMIT_COUNT_FILE": str(count)}
    if setting is not None:
        env["ADSYNC_TEST_CRASH_AT_COMMIT"] = setting
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(db)], env=env, capture_output=True)
    rows = []
    if db.exists():
        rows = [n for (n,) in sqlite3.connect(db).execute("SELECT n FROM t ORDER BY n")]
    return proc.returncode, rows, count.read_text() if count.exists() else ""


def test_unarmed_counts_every_commit(tmp_path: Path) -> None:
    assert run(tmp_path, None) == (0, [1, 2, 3], "3")


@pytest.mark.parametrize(
    ("setting", "rows"), [("2", [1, 2]), ("2:after", [1, 2]), ("2:before", [1])]
)
def test_sigkill_right_after_or_before_the_nth_commit(
    tmp_path: Path, setting: str, rows: list[int]
) -> None:
    code, found, _count = run(tmp_path, setting)
    assert code == -signal.SIGKILL
    assert found == rows


def test_a_malformed_setting_is_refused(tmp_path: Path) -> None:
    code, rows, _count = run(tmp_path, "soon")
    assert code == 1
    assert rows == []
