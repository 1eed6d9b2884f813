"""Finding passwords where they must never be: queue files, logs, outputs.

A finding names the file, the encoding and the offset, and identifies the
password by a digest prefix, so a failing test never prints the password itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class _Needles:
    """Every encoded form of every password, matched in one pass by a trie-shaped regex."""

    def __init__(self, passwords: Iterable[str]) -> None:
        self.owner: dict[bytes, tuple[str, str]] = {}
        for password in passwords:
            if len(password) < 4:
                continue  # too short to be told apart from noise
            for encoding in ENCODINGS:
                self.owner.setdefault(password.encode(encoding), (password, encoding))
        self.pattern = _trie_regex(self.owner) if self.owner else None

    def find(self, data: bytes, where: str) -> list[Finding]:
        found: list[Finding] = []
        if self.pattern is None:
            return found
        seen: set[tuple[str, str]] = set()
        match = self.pattern.search(data)
        while match is not None:
            text = match.group()
            for end in range(1, len(text) + 1):  # needles that are prefixes of the match too
                owner = self.owner.get(text[:end])
                if owner is not None and owner not in seen:
                    seen.add(owner)
                    password, encoding = owner
                    found.append(Finding(where, encoding, match.start(), digest(password)))
            match = self.pattern.search(data, match.start() + 1)  # overlaps too
        return found


def _trie_regex(needles: Iterable[bytes]) -> re.Pattern[bytes]:
    trie: dict[int, Any] = {}
    for needle in needles:
        node = trie
        for byte in needle:
            node = node.setdefault(byte, {})
        node[-1] = {}  # a needle ends here

    def run(byte: int, node: dict[int, Any]) -> bytes:
        """A branch: the bytes of its single-child chain as one literal (depth stays
        the number of branch points, not the needle's length)."""
        chain = bytearray([byte])
        while len(node) == 1 and -1 not in node:
            ((byte, node),) = node.items()
            chain.append(byte)
        return re.escape(bytes(chain)) + emit(node)

    def emit(node: dict[int, Any]) -> bytes:
        branches = [run(byte, child) for byte, child in sorted(node.items()) if byte != -1]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if -1 in node else body

    return re.compile(emit(trie), re.DOTALL)


def find_in_bytes(data: bytes, passwords: Iterable[str], where: str) -> list[Finding]:
    return _Needles(passwords).find(data, where)


def scan_paths(paths: Iterable[Path], passwords: Iterable[str]) -> list[Finding]:
    """Scan files (and every file below directories) for the passwords."""
    needles = _Needles(passwords)
    found: list[Finding] = []
    for path in paths:
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError:
                continue
            found.extend(needles.find(data, str(file)))
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
