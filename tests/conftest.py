"""Session-wide guard: no password a test registered may appear in any watched file.

End-to-end fixtures register the passwords they send (``REGISTRY.password``) and
the daemon's log and queue files (``REGISTRY.watch``); when the session ends the
files are scanned in UTF-8 and UTF-16, and any finding fails the run. Findings
name a digest, never the password.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from adsync.observe.logs import configure_logging
from adsync.testing.leaks import REGISTRY


def pytest_configure(config: pytest.Config) -> None:
    """Every in-process log record goes through adsync's redaction, into a file that the
    leak scan reads: pytest's own log capture is off (it would see records before
    redaction and print them with a failure)."""
    log_dir = Path(tempfile.mkdtemp(prefix="adsync-test-logs-"))
    path = REGISTRY.watch(log_dir / "in-process.log")
    configure_logging("debug", "json", path.open("a", encoding="utf-8"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    findings = REGISTRY.scan()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"leak scan: {len(REGISTRY.passwords)} passwords, {len(REGISTRY.places)} files, "
            f"{len(findings)} findings"
        )
        for finding in findings:
            reporter.write_line(f"LEAK: {finding}", red=True)
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
