"""Runs ``adsync demo`` as a user would: a subprocess of the installed command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from adsync.demo.scenarios import DEMO_PASSWORDS
from adsync.testing.leaks import REGISTRY, find_in_bytes

for _password in DEMO_PASSWORDS.values():
    REGISTRY.password(_password)


def demo_env(tmp: Path) -> dict[str, str]:
    """The demo's temp dir goes under ``tmp`` (TMPDIR), so a test sees what it left."""
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp)
    env.pop("ADSYNC_CONFIG", None)
    return env


def run_demo(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "adsync", "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=demo_env(tmp),
        timeout=timeout,
        check=False,
    )


def password_findings(data: bytes, where: str) -> list[str]:
    """Where a demo password shows up in ``data`` (named by digest, never by value)."""
    return [str(f) for f in find_in_bytes(data, DEMO_PASSWORDS.values(), where)]
