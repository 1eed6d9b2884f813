"""Sealed frames of protocol version 2 on TCP (docs/ipc.md, "Sealed frames"): no I/O.

After the PSK handshake every frame in both directions is AES-256-GCM sealed under a
key of its own direction, derived from the PSK and both handshake nonces, with a counter
nonce: a frame that was changed, cut, replayed, reordered or sent the other way fails its
tag, and the connection is closed. A packet capture on the DC's loopback then shows the
handshake and sealed bytes only, never a password.

Imports ``cryptography`` (the daemon's dependency); the blocking client imports this
module only for TCP, so a Samba hook on the Unix socket starts without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adsync.ingest.codec import FrameSplitter, SealError
from adsync.ingest.wire import LENGTH, NONCE_SIZE, PROTOCOL_MAX_FRAME

TAG_SIZE: Final = 16
KEY_SIZE: Final = 32
CLIENT_TO_DAEMON_INFO: Final = b"adsync/2 seal client->daemon"
DAEMON_TO_CLIENT_INFO: Final = b"adsync/2 seal daemon->client"
_NONCE_PREFIX: Final = b"\x00\x00\x00\x00"
_MAX_COUNTER: Final = (1 << 64) - 1

__all__ = ["Opener", "SealError", "SealedSplitter", "Sealer", "SessionKeys", "session_keys"]


@dataclass(frozen=True, slots=True)
class SessionKeys:
    client_to_daemon: bytes
    daemon_to_client: bytes


def session_keys(psk: bytes, client_nonce: bytes, daemon_nonce: bytes) -> SessionKeys:
    """HKDF-SHA256(ikm = PSK, salt = cn | sn, info = the direction's label), 32 bytes each."""
    if len(psk) != KEY_SIZE:
        raise ValueError(f"the pre-shared key must be {KEY_SIZE} bytes")
    if len(client_nonce) != NONCE_SIZE or len(daemon_nonce) != NONCE_SIZE:
        raise ValueError(f"nonces must be {NONCE_SIZE} bytes")
    salt = client_nonce + daemon_nonce

    def derive(info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), KEY_SIZE, salt, info).derive(psk)

    return SessionKeys(derive(CLIENT_TO_DAEMON_INFO), derive(DAEMON_TO_CLIENT_INFO))


def frame_nonce(counter: int) -> bytes:
    """The GCM nonce of a direction's ``counter``-th frame: 4 zero bytes | counter:u64 BE."""
    return _NONCE_PREFIX + counter.to_bytes(8, "big")


class Sealer:
    """Seals one direction's frames, in the order they go on the wire."""

    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._counter = 0

    def seal(self, frame: bytes) -> bytes:
        """A cleartext frame (length prefix + payload) as its sealed frame."""
        if self._counter > _MAX_COUNTER:
            raise SealError("frame counter exhausted; reconnect")
        payload = memoryview(frame)[LENGTH.size :]
        prefix = LENGTH.pack(len(payload) + TAG_SIZE)
        sealed = self._aead.encrypt(frame_nonce(self._counter), payload, prefix)
        self._counter += 1
        return prefix + sealed


class Opener:
    """Opens one direction's frames; the first that fails makes every later one fail too."""

    __slots__ = ("_aead", "_counter", "_failed")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._counter = 0
        self._failed = False

    def open(self, body: bytes) -> bytes:
        """The payload of a sealed frame's ``body`` (the bytes after its length prefix)."""
        if self._failed or self._counter > _MAX_COUNTER:
            raise SealError("the sealed stream is broken")
        try:
            payload = self._aead.decrypt(frame_nonce(self._counter), body, LENGTH.pack(len(body)))
        except InvalidTag:
            self._failed = True
            raise SealError("a sealed frame failed authentication") from None
        self._counter += 1
        return payload


class SealedSplitter:
    """``FrameSplitter`` for sealed frames: bytes in, opened payloads out.

    A frame's length counts its tag (32 … max_frame + 16). Payloads opened before a
    frame that fails are returned first; the ``SealError`` is raised by the next ``feed``.
    """

    __slots__ = ("_error", "_opener", "_splitter")

    def __init__(self, key: bytes, max_frame: int = PROTOCOL_MAX_FRAME) -> None:
        self._splitter = FrameSplitter(max_frame + TAG_SIZE)
        self._opener = Opener(key)
        self._error: SealError | None = None

    @property
    def failed(self) -> bool:
        return self._error is not None or self._splitter.failed

    @property
    def in_frame(self) -> bool:
        return self._splitter.in_frame

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        out: list[bytes] = []
        for body in self._splitter.feed(data):
            try:
                out.append(self._opener.open(body))
            except SealError as exc:
                self._error = exc
                if out:
                    return out
                raise
        return out
