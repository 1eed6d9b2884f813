"""A deleted ``-wal`` after a crash: the daemon refuses to start instead of losing ACKs quietly.

Real ``adsync run`` subprocesses on real files: ACK 300 changes, SIGKILL, delete
``queue.db-wal`` (an operator "cleaning up"), start: refused with one line on stderr
and exit 2. ``adsync queue accept-loss`` records the loss; then the daemon starts.
A crash without a deleted WAL, and a deleted WAL after a clean stop, lose nothing
and start as always.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient, change_message
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY

SECRET_ENV = "ADSYNC_LOST_WAL_WEBHOOK_SECRET"


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(SECRET_ENV, "lost-wal-signing-key")
    with socket.socket() as sock:  # a port nothing listens on: every change stays queued
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    backend = {"type": "webhook", "url": f"http://127.0.0.1:{dead}/", "secret": f"env:{SECRET_ENV}"}
    config = base_config(tmp_path, {"hr": backend}, logging={"level": "info", "format": "json"})
    proc = DaemonProcess(tmp_path, config)
    yield proc
    proc.kill()


def ack_changes(daemon: DaemonProcess, count: int) -> None:
    """``count`` changes, pipelined (group commit), each ACKed 0 (stored)."""
    messages = []
    for i in range(count):
        password = f"Lost-Wal-{i}-" + os.urandom(4).hex()
        REGISTRY.password(password)
        messages.append(
            change_message(
                account=f"user{i}",
                password=Secret(password),
                changed_at_ms=1_700_000_000_000 + i,
                event_id=os.urandom(16),
            )
        )
    with IngestClient.unix(daemon.unix_socket) as client:
        acks = client.pipeline_changes(messages, window=32)
    assert [int(a.status) for a in acks] == [0] * count


def adsync(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adsync", *args, "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_refused(daemon: DaemonProcess) -> subprocess.CompletedProcess[str]:
    """``adsync run`` that must exit by itself; one that keeps running fails the test."""
    proc = subprocess.Popen(
        daemon.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the daemon started on a queue that lost acknowledged changes:\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stored_changes(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0])


def test_deleted_wal_after_a_crash_is_refused_until_the_loss_is_accepted(
    daemon: DaemonProcess,
) -> None:
    db = Path(daemon.config["queue"]["path"])
    wal = db.with_name(db.name + "-wal")

    daemon.start()
    ack_changes(daemon, 20)
    assert daemon.stop(timeout=30) == 0  # clean stop: the WAL is checkpointed
    wal.unlink(missing_ok=True)  # deleting it now loses nothing
    daemon.start()
    ack_changes(daemon, 10)
    daemon.kill()  # a crash, WAL kept: recovered, no false alarm
    daemon.start()

    ack_changes(daemon, 300)
    daemon.kill()
    assert wal.stat().st_size > 0
    wal.unlink()  # the operator "cleans up" after the crash
    before = hashlib.sha256(db.read_bytes()).digest()

    run = start_refused(daemon)
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    found = re.fullmatch(
        r"adsync: cannot open the queue \S+: queue\.db holds at least (\d+) fewer changes than it "
        r"acknowledged \((\d+) stored, (\d+) acknowledged per queue\.db\.acked\): "
        r"was queue\.db-wal deleted, .* adsync queue accept-loss\)",
        line,
    )
    assert found is not None, line
    missing, stored, acked = map(int, found.groups())
    assert stored == stored_changes(db) < 330  # the deleted WAL held the rest
    # the count is written after each commit, off the ACK path: it may miss the newest ones
    assert stored < acked <= 330 and missing == acked - stored
    assert "queue_behind_acknowledged" in run.stderr  # and a structured log event
    # refused before anything was written (the WAL could still be put back): the
    # database file is unchanged, and the next start says the same
    assert hashlib.sha256(db.read_bytes()).digest() == before
    again = start_refused(daemon)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == line
    assert hashlib.sha256(db.read_bytes()).digest() == before

    accepted = adsync(daemon, "queue", "accept-loss")
    assert accepted.returncode == 0, accepted.stderr
    assert (
        f"{missing} acknowledged changes are missing ({acked} acknowledged, {stored} stored)"
        in (accepted.stdout)
    )
    daemon.start()
    busy = adsync(daemon, "queue", "accept-loss")  # not beside a running daemon
    assert busy.returncode == 1 and "another adsync daemon is using the queue" in busy.stderr
    ack_changes(daemon, 5)
    assert daemon.stop(timeout=30) == 0
    assert stored_changes(db) == stored + 5
    nothing = adsync(daemon, "queue", "accept-loss")
    assert nothing.returncode == 0 and "nothing was lost" in nothing.stdout


def test_a_deleted_wal_put_back_is_applied_and_nothing_is_lost(daemon: DaemonProcess) -> None:
    """The runbook's first step: the refused start wrote nothing, so the WAL still fits."""
    db = Path(daemon.config["queue"]["path"])
    wal = db.with_name(db.name + "-wal")
    daemon.start()
    ack_changes(daemon, 50)
    daemon.kill()
    aside = wal.with_name("wal-in-the-trash")
    wal.rename(aside)
    assert start_refused(daemon).returncode == 2
    aside.rename(wal)
    daemon.start()  # starts: the WAL is applied, the count matches again
    assert daemon.stop(timeout=30) == 0
    assert stored_changes(db) == 50
