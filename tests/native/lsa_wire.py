"""An independent Python reading of docs/ipc.md (protocol version 2, sealed frames), for
the fake daemon in these tests.

Kept apart from the daemon's own codec and sealing on purpose: the DLL is checked against
the spec as written, not against another implementation that could share a misreading.
Only the primitives come from ``cryptography`` (AES-256-GCM, HKDF-SHA256).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 2
HELLO, CHALLENGE, AUTH, AUTH_OK = 0x01, 0x02, 0x03, 0x04
CHECK, VERDICT, CHANGE, ACK, ERROR = 0x10, 0x11, 0x20, 0x21, 0x7F

# tags whose value has a fixed size in CHANGE/CHECK frames
FIXED = {0x13: 1, 0x16: 4, 0x17: 16, 0x18: 8, 0x19: 16, 0x1A: 8}
STRINGS = {0x10, 0x11, 0x12, 0x14, 0x15}


class WireError(ValueError):
    """A frame that breaks the spec; the message never quotes field content."""


@dataclass
class Frame:
    type: int
    request_id: int
    fields: dict[int, bytes] = field(repr=False)
    raw: bytes = field(repr=False)


def encode(ftype: int, request_id: int, fields: list[tuple[int, bytes]]) -> bytes:
    payload = b"ADSY" + struct.pack(">BBHQ", VERSION, ftype, 0, request_id)
    for tag, value in fields:
        payload += struct.pack(">BH", tag, len(value)) + value
    return struct.pack(">I", len(payload)) + payload


def decode_payload(payload: bytes) -> Frame:
    if len(payload) < 16:
        raise WireError("short header")
    magic, version, ftype, flags, rid = struct.unpack(">4sBBHQ", payload[:16])
    if magic != b"ADSY" or version != VERSION or flags != 0:
        raise WireError("bad header")
    fields: dict[int, bytes] = {}
    off = 16
    while off < len(payload):
        if len(payload) - off < 3:
            raise WireError("truncated field header")
        tag, flen = struct.unpack(">BH", payload[off : off + 3])
        value = payload[off + 3 : off + 3 + flen]
        if len(value) != flen:
            raise WireError(f"truncated field 0x{tag:02x}")
        if tag in fields:
            raise WireError(f"repeated tag 0x{tag:02x}")
        if tag in FIXED and flen != FIXED[tag]:
            raise WireError(f"tag 0x{tag:02x} has length {flen}")
        if tag in STRINGS:
            if flen == 0 or flen > 1024 or b"\0" in value:
                raise WireError(f"tag 0x{tag:02x} out of bounds")
            value.decode("utf-8")  # strict: raises on invalid UTF-8 (incl. surrogates)
        fields[tag] = value
        off += 3 + flen
    return Frame(ftype, rid, fields, payload)


def proof(key: bytes, side: str, cn: bytes, sn: bytes) -> bytes:
    label = b"adsync/2 daemon" if side == "daemon" else b"adsync/2 client"
    return hmac.new(key, label + cn + sn, hashlib.sha256).digest()


class Direction:
    """One direction of a sealed connection: AES-256-GCM, nonce 4 zero bytes | counter."""

    def __init__(self, psk: bytes, cn: bytes, sn: bytes, label: bytes) -> None:
        key = HKDF(hashes.SHA256(), 32, cn + sn, b"adsync/2 seal " + label).derive(psk)
        self.aead = AESGCM(key)
        self.counter = 0

    def _nonce(self) -> bytes:
        nonce = bytes(4) + struct.pack(">Q", self.counter)
        self.counter += 1
        return nonce

    def seal(self, frame: bytes) -> bytes:
        prefix = struct.pack(">I", len(frame) - 4 + 16)
        return prefix + self.aead.encrypt(self._nonce(), frame[4:], prefix)

    def open(self, body: bytes) -> bytes:
        """Raises cryptography's InvalidTag when the frame was not sealed for this point."""
        return self.aead.decrypt(self._nonce(), body, struct.pack(">I", len(body)))
