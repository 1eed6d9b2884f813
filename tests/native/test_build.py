"""The build itself: exports, imports, the native ASan/UBSan suite, the fuzz targets."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from lsa_wine import NATIVE

SYSTEM_DLLS = {
    "kernel32.dll",
    "ws2_32.dll",
    "bcrypt.dll",
    "crypt32.dll",
    "advapi32.dll",
    "msvcrt.dll",
    "ucrtbase.dll",
}


def objdump(path: Path) -> str:
    return subprocess.run(
        ["x86_64-w64-mingw32-objdump", "-p", str(path)], capture_output=True, text=True, check=True
    ).stdout


def test_dll_exports_the_three_undecorated_names(native_build: Path) -> None:
    text = objdump(native_build / "adsyncflt.dll")
    table = text[text.index("[Ordinal/Name Pointer] Table") :]
    names = re.findall(r"^\s+\[\s*\d+\]\s+(\S+)$", table, re.MULTILINE)
    assert sorted(names) == ["InitializeChangeNotify", "PasswordChangeNotify", "PasswordFilter"]


def test_dll_imports_only_system_dlls(native_build: Path) -> None:
    imports = {
        m.lower() for m in re.findall(r"DLL Name: (\S+)", objdump(native_build / "adsyncflt.dll"))
    }
    assert imports and imports <= SYSTEM_DLLS, imports - SYSTEM_DLLS
    assert not any("gcc" in m or "winpthread" in m or "stdc++" in m for m in imports)


@pytest.mark.slow
def test_native_core_suite_clean_under_asan_ubsan(tmp_path: Path) -> None:
    log = tmp_path / "check.log"
    with log.open("wb") as out:
        rc = subprocess.run(
            ["make", "-C", str(NATIVE), "check"], stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert re.search(r"\d+ checks, 0 failures", text)


@pytest.mark.slow
def test_fuzz_targets_build_and_run(tmp_path: Path) -> None:
    """libFuzzer on the reply decoder, the UTF-16 converter, the account glob, the spool
    reader and the sealed framing. A short run by default;
    CI sets ADSYNC_FUZZ_SECONDS=60 for the issue's minute per target. As many targets
    run at once as there are CPUs (each has a core for its minute; nothing else runs
    beside this test)."""
    seconds = int(os.environ.get("ADSYNC_FUZZ_SECONDS", "2"))
    jobs = max(1, os.cpu_count() or 1)
    log = tmp_path / "fuzz.log"
    with log.open("wb") as out:
        rc = subprocess.run(
            [
                "make",
                "-C",
                str(NATIVE),
                f"-j{jobs}",
                "--output-sync=target",
                "fuzz",
                f"FUZZ_SECONDS={seconds}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert text.count("Done ") == 5  # every target ran to its time limit, no crash
