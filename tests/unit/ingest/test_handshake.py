"""The PSK handshake arithmetic (docs/ipc.md)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from adsync.ingest import handshake

KEY = bytes(range(32))
CN = b"\x11" * 32
SN = b"\x22" * 32


def test_proofs_follow_the_spec_formula() -> None:
    expected_daemon = hmac.new(KEY, b"adsync/1 daemon" + CN + SN, hashlib.sha256).digest()
    expected_client = hmac.new(KEY, b"adsync/1 client" + CN + SN, hashlib.sha256).digest()
    assert handshake.daemon_proof(KEY, CN, SN) == expected_daemon
    assert handshake.client_proof(KEY, CN, SN) == expected_client


def test_daemon_and_client_proofs_differ_so_neither_can_be_replayed() -> None:
    assert handshake.daemon_proof(KEY, CN, SN) != handshake.client_proof(KEY, CN, SN)
    assert not handshake.verify_client_proof(KEY, CN, SN, handshake.daemon_proof(KEY, CN, SN))


def test_verification_accepts_right_and_refuses_wrong_key_or_nonce() -> None:
    proof = handshake.client_proof(KEY, CN, SN)
    assert handshake.verify_client_proof(KEY, CN, SN, proof)
    assert not handshake.verify_client_proof(b"\x00" * 32, CN, SN, proof)
    assert not handshake.verify_client_proof(KEY, SN, CN, proof)
    sp = handshake.daemon_proof(KEY, CN, SN)
    assert handshake.verify_daemon_proof(KEY, CN, SN, sp)
    assert not handshake.verify_daemon_proof(KEY, CN, b"\x23" * 32, sp)


def test_nonces_are_fresh_32_bytes() -> None:
    a, b = handshake.new_nonce(), handshake.new_nonce()
    assert len(a) == len(b) == 32
    assert a != b


def test_wrong_key_size_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        handshake.daemon_proof(b"short", CN, SN)
