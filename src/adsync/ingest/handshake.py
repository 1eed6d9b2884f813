"""The TCP transport's pre-shared-key handshake (docs/ipc.md): pure HMAC arithmetic.

Both sides prove the key over both nonces, under different labels, so a proof
seen in one direction cannot be replayed in the other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from adsync.ingest.wire import NONCE_SIZE

KEY_SIZE: Final = 32
DAEMON_LABEL: Final = b"adsync/1 daemon"
CLIENT_LABEL: Final = b"adsync/1 client"
# Version 2 (sealed) proves under its own labels: the version is bound into the proofs, so
# a HELLO rewritten from 2 to 1 on the way gets a proof the v2 client refuses.
_LABELS: Final = {
    1: (DAEMON_LABEL, CLIENT_LABEL),
    2: (b"adsync/2 daemon", b"adsync/2 client"),
}


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def _proof(key: bytes, label: bytes, client_nonce: bytes, daemon_nonce: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError(f"the pre-shared key must be {KEY_SIZE} bytes")
    if len(client_nonce) != NONCE_SIZE or len(daemon_nonce) != NONCE_SIZE:
        raise ValueError(f"nonces must be {NONCE_SIZE} bytes")
    return hmac.new(key, label + client_nonce + daemon_nonce, hashlib.sha256).digest()


def daemon_proof(key: bytes, client_nonce: bytes, daemon_nonce: bytes, version: int = 1) -> bytes:
    """sp = HMAC-SHA256(key, "adsync/<version> daemon" | cn | sn)."""
    return _proof(key, _LABELS[version][0], client_nonce, daemon_nonce)


def client_proof(key: bytes, client_nonce: bytes, daemon_nonce: bytes, version: int = 1) -> bytes:
    """cp = HMAC-SHA256(key, "adsync/<version> client" | cn | sn)."""
    return _proof(key, _LABELS[version][1], client_nonce, daemon_nonce)


def verify_daemon_proof(
    key: bytes, client_nonce: bytes, daemon_nonce: bytes, proof: bytes, version: int = 1
) -> bool:
    return hmac.compare_digest(daemon_proof(key, client_nonce, daemon_nonce, version), proof)


def verify_client_proof(
    key: bytes, client_nonce: bytes, daemon_nonce: bytes, proof: bytes, version: int = 1
) -> bool:
    return hmac.compare_digest(client_proof(key, client_nonce, daemon_nonce, version), proof)
