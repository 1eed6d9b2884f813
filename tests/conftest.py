"""Session-wide guard: no password a test registered may appear in any watched file.

End-to-end fixtures register the passwords they send (``REGISTRY.password``) and
the daemon's log and queue files (``REGISTRY.watch``); when the session ends the
files are scanned in UTF-8 and UTF-16, and any finding fails the run. Findings
name a digest, never the password.
"""

from __future__ import annotations

import pytest

from adsync.testing.leaks import REGISTRY


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
