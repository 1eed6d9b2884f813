"""Fixtures for the LSA filter DLL tests: one build and one WINEPREFIX per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the lsa_* helper modules (importlib mode)

from lsa_wine import NATIVE, WinePrefix, winpath

from adsync.testing.leaks import REGISTRY

SLOW_FIXTURES = frozenset({"native_build", "wine"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the mingw-w64 build or a wine prefix is slow: the session pays the
    build and wineboot (tens of seconds here) before its first such test runs."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def native_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make dll harness` once per session (make's output to a file, shown on failure)."""
    log = tmp_path_factory.mktemp("build") / "make.log"
    with log.open("wb") as out:
        rc = subprocess.run(
            ["make", "-C", str(NATIVE), "dll", "harness"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    assert rc == 0, log.read_text()[-4000:]
    return NATIVE / "build"


@pytest.fixture(scope="session")
def wine(native_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WinePrefix]:
    prefix = WinePrefix(tmp_path_factory.mktemp("wine"))
    try:
        prefix.start()
    except BaseException:
        prefix.stop()  # a failed wineboot must not leave its wineserver running
        raise
    yield prefix
    prefix.stop()


@dataclass
class FilterSetup:
    """Per-test files of one filter installation (key, spool, log) and its registry values."""

    wine: WinePrefix
    root: Path
    psk: bytes = field(repr=False)

    @property
    def key_file(self) -> Path:
        return self.root / "filter.key"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    @property
    def spool_file(self) -> Path:
        return self.spool_dir / "adsyncflt.spool"

    @property
    def log_file(self) -> Path:
        return self.root / "adsyncflt.log"

    def configure(self, port: int, **extra: int | str) -> None:
        values: dict[str, int | str] = {
            "Port": port,
            "KeyFile": winpath(self.key_file),
            "SpoolDir": winpath(self.spool_dir),
            "LogFile": winpath(self.log_file),
            "LogLevel": "debug",
            "DeadlineMs": 2000,
            "BackoffInitialMs": 100,
            "BackoffMaxMs": 400,
            "ConnectTimeoutMs": 1000,
        }
        values.update(extra)
        self.wine.set_filter_settings(values)

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""


@pytest.fixture
def filter_setup(wine: WinePrefix, tmp_path: Path) -> FilterSetup:
    psk = os.urandom(32)
    setup = FilterSetup(wine, tmp_path, psk)
    setup.key_file.write_bytes(psk)
    setup.key_file.chmod(0o600)
    REGISTRY.watch(setup.log_file)
    REGISTRY.watch(setup.spool_dir)
    return setup
