"""The leak scanner finds passwords in every encoding and never prints them."""

from __future__ import annotations

from pathlib import Path

from adsync.testing.leaks import LeakRegistry, digest, find_in_bytes


def test_finds_utf8_and_utf16(tmp_path: Path) -> None:
    password = "Pässwörd€1-leak"
    for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
        data = b"xx" + password.encode(encoding) + b"yy"
        findings = find_in_bytes(data, [password], "mem")
        assert [f.encoding for f in findings] == [encoding]
        assert password not in str(findings[0])
        assert digest(password) in str(findings[0])


def test_registry_scans_watched_files(tmp_path: Path) -> None:
    registry = LeakRegistry()
    clean, dirty = tmp_path / "clean.log", tmp_path / "dirty.db"
    clean.write_bytes(b"nothing here")
    dirty.write_bytes(b"\x00" + "S3cret-Value!".encode("utf-16-le"))
    registry.watch(clean)
    registry.watch(dirty)
    registry.watch(tmp_path / "missing")
    registry.password("S3cret-Value!")
    findings = registry.scan()
    assert {Path(f.where).name for f in findings} == {"dirty.db"}


def test_long_and_overlapping_passwords() -> None:
    """A 256-character password (512 bytes in UTF-16) and passwords sharing prefixes."""
    long_pw = "L" + "ä€𝄞x" * 64
    short = "Prefix-1"
    longer = "Prefix-12345"
    data = b"..." + long_pw.encode("utf-16-le") + b"--" + longer.encode() + b"--"
    found = find_in_bytes(data, [long_pw, short, longer], "mem")
    assert {(f.digest, f.encoding) for f in found} == {
        (digest(long_pw), "utf-16-le"),
        (digest(longer), "utf-8"),
        (digest(short), "utf-8"),  # inside the longer one: overlaps are found too
    }
