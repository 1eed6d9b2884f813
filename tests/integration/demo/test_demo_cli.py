"""``adsync demo`` in a subprocess, its output piped (as CI and scripts see it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adsync.demo.scenarios import POLICY_REASON
from adsync.testing.leaks import scan_paths

from .conftest import DEMO_PASSWORDS, password_findings, run_demo

pytestmark = pytest.mark.slow

FINAL_LINES = (
    "✓ 1 normal change (alice): delivered",
    f"✓ 2 policy check (bob): rejected by policy: {POLICY_REASON}",
    "✓ 3 unknown user (ghost): unknown user, failed",
    "✓ 4 target outage (carol): outage, then delivered",
)


def assert_story(out: str) -> None:
    for line in FINAL_LINES:
        assert line in out, f"missing final line {line!r}"
    # each target's own end, as the summary details it
    assert "hr-webhook: delivered after 1 attempt" in out
    assert re.search(r"soffid: failed after \d+ attempts \(unknown_user ×\d+\)", out)  # noqa: RUF001
    assert re.search(r"soffid: delivered after \d+ attempts \(unreachable ×\d+ → delivered\)", out)  # noqa: RUF001
    # the way through the queue, live
    assert "in flight (attempt 1)" in out
    assert re.search(
        r"carol → soffid: unreachable \(ClientConnectorError: cannot connect to "
        r"127\.0\.0\.1:\d+\); retry in",
        out,
    )
    assert "soffid comes back" in out
    assert "unknown user for longer than unknown_user_grace (2.5s)" in out
    assert "both targets received exactly the passwords sent" in out


def test_demo_non_interactive_runs_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    proc = run_demo(tmp_path, "--non-interactive")
    out = proc.stdout.decode("utf-8")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr.decode()}"
    assert_story(out)
    assert "(password hidden)" in out
    assert "temp dir removed" in out
    assert password_findings(proc.stdout + proc.stderr, "demo output") == []
    assert list(tmp_path.iterdir()) == [], "the demo left files in its temp dir's parent"


def test_demo_keep_piped_is_plain_and_keeps_a_leak_free_temp_dir(tmp_path: Path) -> None:
    proc = run_demo(tmp_path, "--keep")  # stdout is a pipe: plain lines without the flag
    out = proc.stdout.decode("utf-8")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr.decode()}"
    assert_story(out)
    assert "┏" not in out and "\x1b[" not in out, "a live redraw went to a pipe"
    match = re.search(r"kept the demo's files \(.*\) in (\S+)", out)
    assert match, out
    kept = Path(match.group(1))
    assert kept.parent == tmp_path
    for name in ("adsync.yaml", "queue.db", "master.key", "daemon.log"):
        assert (kept / name).is_file(), name
    assert (kept / "master.key").stat().st_mode & 0o077 == 0
    log = (kept / "daemon.log").read_text()
    assert '"daemon_ready"' in log or "daemon_ready" in log
    findings = [str(f) for f in scan_paths([kept], DEMO_PASSWORDS.values())]
    assert password_findings(proc.stdout + proc.stderr, "demo output") == []
    assert findings == []
