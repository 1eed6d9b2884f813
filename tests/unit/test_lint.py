"""The code standards as tests: ruff (lint and format) on everything, mypy --strict on src/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint() -> None:
    result = run("ruff", "check", "src", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "src", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_example_plugin() -> None:
    """examples/plugin_example is what plugin authors copy: it type-checks as strictly."""
    example = ROOT / "examples" / "plugin_example"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(example / "src"), str(example / "tests")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPYPATH": f"{example / 'src'}{os.pathsep}{example / 'tests'}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
