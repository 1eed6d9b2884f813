"""A production install: adsync from a copy of this checkout into a fresh venv, no extras.

Built once per session (pip's cache makes it a few seconds after the first time).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def copy_source(dest: Path) -> Path:
    """The checkout without venvs and build output (pip builds in the tree it is given)."""
    shutil.copytree(ROOT, dest, ignore=SKIP)
    return dest


@pytest.fixture(scope="session")
def production_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with ``pip install .`` and nothing else; yields its python."""
    base = tmp_path_factory.mktemp("production")
    source = copy_source(base / "src")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        check=True,
        timeout=600,
    )
    yield python


def run_python(python: Path, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )


__all__ = ["ROOT", "copy_source", "run_python", "sys"]
