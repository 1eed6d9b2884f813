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


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def _proof(key: bytes, label: bytes, client_nonce: bytes, daemon_nonce: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError(f"the pre-shared key must be {KEY_SIZE} bytes")
    if len(client_nonce) != NONCE_SIZE or len(daemon_nonce) != NONCE_SIZE:
        raise ValueError(f"nonces must be {NONCE_SIZE} bytes")
    return hmac.new(key, label + client_nonce + daemon_nonce, hashlib.sha256).digest()


def daemon_proof(key: bytes, client_nonce: bytes, daemon_nonce: bytes) -> bytes:
    """sp = HMAC-SHA256(key, "adsync/1 daemon" | cn | sn)."""
    return _proof(key, DAEMON_LABEL, client_nonce, daemon_nonce)


def client_proof(key: bytes, client_nonce: bytes, daemon_nonce: bytes) -> bytes:
    """cp = HMAC-SHA256(key, "adsync/1 client" | cn | sn)."""
    return _proof(key, CLIENT_LABEL, client_nonce, daemon_nonce)


def verify_daemon_proof(key: bytes, client_nonce: bytes, daemon_nonce: bytes, proof: bytes) -> bool:
    return hmac.compare_digest(daemon_proof(key, client_nonce, daemon_nonce), proof)


def verify_client_proof(key: bytes, client_nonce: bytes, daemon_nonce: bytes, proof: bytes) -> bool:
    return hmac.compare_digest(client_proof(key, client_nonce, daemon_nonce), proof)
