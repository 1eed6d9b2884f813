"""Reading the LSA filter's spool file (``adsyncflt.spool``, or a set-aside
``adsyncflt.spool.bad-<ms>``) with the same recovery rules as the DLL
(``native/lsa_filter/core/spool.c``), for ``adsync filter spool replay``.

Format (docs/windows.md): records ``"ASP1" | ct_len:u32 | nonce (12) | ciphertext | tag (16)``,
AES-256-GCM under HKDF-SHA256(PSK, info "adsync/1 lsa-filter spool aes-256-gcm"), AAD the
first 8 bytes; the plaintext is the CHANGE TLVs 0x10 account, 0x12 password, 0x16 RID,
0x18 changed_at, 0x19 event id, 0x1A source sequence (all six, each once).

A record that does not open is skipped and reading resumes at the next record that does;
a tail cut short, zero-filled, or a last record that does not open in a file ending in
zeros (8 zero bytes when it ends where the file does) is a torn write. No I/O here: bytes
in, changes and a report out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adsync.secret import Secret

MAGIC = b"ASP1"
HEAD = 20  # magic, ct_len, nonce
TAG = 16
TORN_ZEROS = 8  # a last record that does not open and ends in 8 zero bytes: torn (spool.h)
MAX_PT = 3 + 1024 + 3 + 1024 + 3 + 4 + 3 + 8 + 3 + 16 + 3 + 8  # ADSY_SPOOL_MAX_PT
KEY_INFO = b"adsync/1 lsa-filter spool aes-256-gcm"
FIXED = {0x16: 4, 0x18: 8, 0x19: 16, 0x1A: 8}
REQUIRED = frozenset({0x10, 0x12, 0x16, 0x18, 0x19, 0x1A})


def spool_key(psk: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, None, KEY_INFO).derive(psk)


@dataclass(frozen=True, slots=True)
class SpooledChange:
    account: str
    password: Secret = field(repr=False)
    rid: int
    changed_at_ms: int
    event_id: bytes
    sequence: int


@dataclass(slots=True)
class SpoolReport:
    changes: list[SpooledChange] = field(default_factory=list)
    skipped: int = 0  # damaged stretches skipped (each costs the record(s) in it)
    skipped_bytes: int = 0
    torn_bytes: int = 0  # an interrupted append at the end


class _Damaged(Exception):
    """A record that does not open or does not parse (never carries its content)."""


def _parse(pt: bytes) -> SpooledChange:
    fields: dict[int, bytes] = {}
    off = 0
    while off < len(pt):
        if len(pt) - off < 3:
            raise _Damaged
        tag, n = pt[off], int.from_bytes(pt[off + 1 : off + 3], "big")
        value = pt[off + 3 : off + 3 + n]
        if len(value) != n or tag in fields or tag not in REQUIRED:
            raise _Damaged
        if tag in FIXED and n != FIXED[tag]:
            raise _Damaged
        fields[tag] = value
        off += 3 + n
    if set(fields) != REQUIRED or not fields[0x10] or not fields[0x12]:
        raise _Damaged
    try:
        account = fields[0x10].decode("utf-8")
        password = fields[0x12].decode("utf-8")
    except UnicodeDecodeError:
        raise _Damaged from None
    return SpooledChange(
        account=account,
        password=Secret(password),
        rid=struct.unpack(">I", fields[0x16])[0],
        changed_at_ms=struct.unpack(">Q", fields[0x18])[0],
        event_id=fields[0x19],
        sequence=struct.unpack(">Q", fields[0x1A])[0],
    )


class _Reader:
    def __init__(self, data: bytes, psk: bytes) -> None:
        self.data = data
        self.aead = AESGCM(spool_key(psk))

    def record_len(self, off: int) -> int | None:
        """The record's whole size from a sound header, else None."""
        head = self.data[off : off + 8]
        if len(head) < 8 or head[:4] != MAGIC:
            return None
        n = int.from_bytes(head[4:8], "big")
        return HEAD + n + TAG if 0 < n <= MAX_PT else None

    def open(self, off: int) -> tuple[SpooledChange, int] | None:
        size = self.record_len(off)
        if size is None or off + size > len(self.data):
            return None
        rec = self.data[off : off + size]
        try:
            pt = self.aead.decrypt(rec[8:20], rec[20:], rec[:8])
            return _parse(pt), size
        except (InvalidTag, _Damaged):
            return None

    def resync(self, start: int) -> int | None:
        pos = self.data.find(MAGIC, start)
        while pos != -1:
            if self.open(pos) is not None:
                return pos
            pos = self.data.find(MAGIC, pos + 1)
        return None


def read_spool(data: bytes, psk: bytes) -> SpoolReport:
    """Every change that opens, in file order, and what was lost (see the module doc)."""
    r, report, off, end = _Reader(data, psk), SpoolReport(), 0, len(data)
    while off < end:
        opened = r.open(off)
        if opened is not None:
            report.changes.append(opened[0])
            off += opened[1]
            continue
        rest = data[off:]
        if not rest.strip(b"\0"):
            report.torn_bytes = end - off
            break
        size = r.record_len(off)
        cut_short = (size is None and end - off < 8) or (size is not None and off + size > end)
        nxt: int | None = None
        if size is not None and not cut_short:
            if off + size == end and not data[end - TORN_ZEROS :].strip(b"\0"):
                report.torn_bytes = end - off  # its header landed, its tag never did
                break
            if off + size == end or r.open(off + size) is not None:
                nxt = off + size
        if nxt is None:
            nxt = r.resync(off + 1)
        if nxt is None and (cut_short or not data[max(off, end - TAG) :].strip(b"\0")):
            report.torn_bytes = end - off
            break
        nxt = end if nxt is None else nxt
        report.skipped += 1
        report.skipped_bytes += nxt - off
        off = nxt
    return report


__all__ = ["SpoolReport", "SpooledChange", "read_spool", "spool_key"]
