"""``adsync demo`` in a real terminal: tmux gives it a 120x40 pty, we read the final screen."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adsync.demo.scenarios import POLICY_REASON

from .conftest import demo_env, password_findings

pytestmark = pytest.mark.slow


def tmux(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-u", "-S", str(sock), *args], capture_output=True, text=True, check=False
    )


def test_demo_live_in_tmux_ends_with_every_state_and_exit_0(tmp_path: Path) -> None:
    assert shutil.which("tmux"), "tmux is needed (apt-get install tmux)"
    sock = tmp_path / "tmux.sock"
    exit_file = tmp_path / "exit"
    demo_tmp = tmp_path / "demo-tmp"
    demo_tmp.mkdir()
    command = (
        f"{shlex.quote(sys.executable)} -m adsync demo; "
        f"echo EXIT=$? > {shlex.quote(str(exit_file))}; sleep 600"
    )
    env = demo_env(demo_tmp)
    started = subprocess.run(
        ["tmux", "-u", "-S", str(sock), "new-session", "-d", "-x", "120", "-y", "40", command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 120
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.2)  # tmux draws what the demo wrote last
        screen = tmux(sock, "capture-pane", "-p").stdout
        history = tmux(sock, "capture-pane", "-p", "-S", "-", "-E", "-").stdout
    finally:
        tmux(sock, "kill-server")
    assert exit_file.exists(), f"the demo did not finish:\n{screen}"
    assert exit_file.read_text().strip() == "EXIT=0", screen
    # the live table's last frame: one row per scenario and target, in its final state
    assert "┏" in screen, "no live table was drawn"
    for account, target, state in (
        ("alice", "hr-webhook", "delivered"),
        ("alice", "soffid", "delivered"),
        ("bob", "policy check", "rejected"),
        ("ghost", "hr-webhook", "failed"),
        ("ghost", "soffid", "failed"),
        ("carol", "soffid", "delivered"),
    ):
        assert any(
            account in line and target in line and state in line for line in screen.splitlines()
        ), f"no final row {account}/{target}/{state}:\n{screen}"
    for line in (
        "✓ 1 normal change (alice): delivered",
        f"✓ 2 policy check (bob): rejected by policy: {POLICY_REASON}",
        "✓ 3 unknown user (ghost): unknown user, failed",
        "✓ 4 target outage (carol): outage, then delivered",
        "temp dir removed",
    ):
        assert line in screen, f"missing {line!r}:\n{screen}"
    assert password_findings(history.encode(), "terminal history") == []
    assert list(demo_tmp.iterdir()) == []
