"""Finding passwords where they must never be: queue files, logs, outputs.

A finding names the file, the encoding and the offset, and identifies the
password by a digest prefix, so a failing test never prints the password itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")


@dataclass(frozen=True)
class Finding:
    where: str
    encoding: str
    offset: int
    digest: str  # first 12 hex chars of sha256(password)

    def __str__(self) -> str:
        return f"{self.where}: password sha256:{self.digest}… in {self.encoding} at {self.offset}"


def digest(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()[:12]


def find_in_bytes(data: bytes, passwords: Iterable[str], where: str) -> list[Finding]:
    found: list[Finding] = []
    for password in passwords:
        if len(password) < 4:
            continue  # too short to be told apart from noise
        for encoding in ENCODINGS:
            offset = data.find(password.encode(encoding))
            if offset >= 0:
                found.append(Finding(where, encoding, offset, digest(password)))
    return found


def scan_paths(paths: Iterable[Path], passwords: Iterable[str]) -> list[Finding]:
    """Scan files (and every file below directories) for the passwords."""
    secrets = list(passwords)
    found: list[Finding] = []
    for path in paths:
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError:
                continue
            found.extend(find_in_bytes(data, secrets, str(file)))
    return found


class LeakRegistry:
    """The passwords a test session used and the places they must not appear."""

    def __init__(self) -> None:
        self.passwords: set[str] = set()
        self.places: set[Path] = set()

    def password(self, value: str) -> str:
        self.passwords.add(value)
        return value

    def watch(self, path: Path) -> Path:
        self.places.add(path)
        return path

    def scan(self) -> list[Finding]:
        return scan_paths(sorted(p for p in self.places if p.exists()), self.passwords)


REGISTRY = LeakRegistry()
"""The session-wide registry; tests/conftest.py scans it when the session ends."""
