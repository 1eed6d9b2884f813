"""scripts/build-windows-bundle.sh: one zip a Windows DC installs from, without internet.

Every runtime dependency of ``adsync[<bundle extras>]`` must be a win_amd64 (or pure) wheel
for CPython 3.11, 3.12 and 3.13: checked twice, by pip's own resolver offline against the
wheelhouse, and by a marker-aware walk for Windows (pip evaluates markers such as
``sys_platform == 'win32'`` for the machine it runs on, so it alone would miss pywin32).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow

PYTHONS = ["3.11", "3.12", "3.13"]
TOP_LEVEL = {
    "install-adsync.ps1",
    "install.ps1",
    "uninstall.ps1",
    "adsyncflt.dll",
    "EXTRAS.txt",
    "MANIFEST.txt",
    "wheels",
}


def wheelhouse_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "windows_wheelhouse", ROOT / "scripts" / "windows_wheelhouse.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-windows-bundle.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (zip_path,) = out.glob("adsync-windows-*.zip")
    target = out / "unpacked"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(target)
    (stage,) = target.iterdir()
    return stage


def test_the_zip_holds_exactly_the_manifest(bundle: Path) -> None:
    assert {p.name for p in bundle.iterdir()} == TOP_LEVEL
    files = sorted(
        p.relative_to(bundle).as_posix()
        for p in bundle.rglob("*")
        if p.is_file() and p.name != "MANIFEST.txt"
    )
    manifest = {}
    for line in (bundle / "MANIFEST.txt").read_text().splitlines():
        digest, _, name = line.partition("  ")
        manifest[name] = digest
    assert sorted(manifest) == files
    for name, digest in manifest.items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest, name


def test_scripts_reference_only_files_in_the_bundle(bundle: Path) -> None:
    script = (bundle / "install-adsync.ps1").read_text()
    referenced = set(re.findall(r"Join-Path \$PSScriptRoot '([^']+)'", script))
    assert referenced == {"wheels", "EXTRAS.txt", "install.ps1", "adsyncflt.dll"}
    assert all((bundle / name).exists() for name in referenced)
    assert (bundle / "install.ps1").read_bytes() == (
        ROOT / "native" / "lsa_filter" / "install.ps1"
    ).read_bytes()
    assert (bundle / "adsyncflt.dll").read_bytes()[:2] == b"MZ"
    # install-adsync.ps1 installs offline only
    assert "'--no-index', '--find-links', $Wheels" in script


def test_wheelhouse_holds_wheels_only(bundle: Path) -> None:
    names = [p.name for p in (bundle / "wheels").iterdir()]
    assert names and all(n.endswith(".whl") for n in names), names
    assert any(n.startswith("adsync-") for n in names)


@pytest.mark.parametrize("python", PYTHONS)
def test_every_dependency_is_a_windows_wheel(bundle: Path, python: str) -> None:
    house = bundle / "wheels"
    extras = {e for e in (bundle / "EXTRAS.txt").read_text().strip().split(",") if e}
    missing, stray = wheelhouse_module().resolve(house, "adsync", extras, python)
    assert (missing, stray) == ([], [])
    tag = f"cp{python.replace('.', '')}"
    assert any(p.name.startswith("pywin32-") and tag in p.name for p in house.iterdir())
    spec = f"adsync[{','.join(sorted(extras))}]" if extras else "adsync"
    resolved = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--dry-run",
            "--ignore-installed",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(house),
            "--only-binary=:all:",
            "--platform",
            "win_amd64",
            "--implementation",
            "cp",
            "--python-version",
            python,
            "--target",
            str(bundle.parent / f"t{python}"),
            spec,
            "pywin32>=306",  # pip drops pywin32's win32 marker on Linux: named here
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resolved.returncode == 0, resolved.stderr[-3000:]
