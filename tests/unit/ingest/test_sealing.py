"""Sealed frames of protocol version 2 (docs/ipc.md "Sealed frames"), against the test
vector of the doc, which the native core suite checks too (native/lsa_filter/tests)."""

from __future__ import annotations

import pytest

from adsync.ingest import handshake, sealing
from adsync.ingest.codec import AckReply, ChangeMsg, SealError, decode, encode
from adsync.ingest.wire import AckCode
from adsync.secret import Secret

PSK = bytes(range(32))
CN = b"\x11" * 32
SN = b"\x22" * 32

# docs/ipc.md, "Test vector (version 2)"
C2D = "c9b3ad150a5a7617b91a4562dcd62538946c0b2522a9c66bcfabc964187c9f42"
D2C = "6f0c3828f92893f32098ca11a6c028a6f16c65571bc1f9114a6fa76b34a37f45"
SP2 = "70b4b56b6a65dc68b09d88561655aa2996f25fb6d664e03258a2f817651e25e4"
CP2 = "aa59a37711705eb4335de1f81b307f6919460bbce5fdb3c24f2b53b16c164ed3"
CHANGE_V2 = (
    "00 00 00 50 41 44 53 59 02 20 00 00 00 00 00 00 00 00 00 07"
    " 10 00 05 61 6c 69 63 65 12 00 0e 50 c3 a4 73 73 77 c3 b6 72 64 e2 82 ac 31"
    " 14 00 06 41 44 53 59 4e 43 18 00 08 00 00 01 8b cf e5 68 00"
    " 19 00 10 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
)
SEALED_CHANGE = (
    "00 00 00 60 ff e7 3a 96 2c c1 63 63 63 b6 be aa 55 6c a8 74 f6 03 4e e9 96 44 48 b4"
    " 55 ab 5f 13 46 47 5a 54 7e 92 9a 3b 65 5c ac e8 e2 2d 72 c8 46 6a e8 0d cc 28 d3 b5"
    " e6 05 1d d8 49 8e 6d be 13 7d fc c7 62 80 a3 49 a7 ef 8e 0f dd a1 e0 35 00 44 ea b4"
    " 88 fd 0f 3d fb ec c0 9a f1 1a 5c 00 89 82 e0 78"
)
SEALED_ACK = (
    "00 00 00 24 63 33 b0 4c dd 0e 8b a9 2f 19 1b 33 d4 33 24 2a d3 c5 cd e4 09 e2 48 c3"
    " 0c 5f dd 77 1f d9 34 3c 1b fc 1e 2f"
)
V2 = frozenset({2})


def change() -> ChangeMsg:
    return ChangeMsg("alice", Secret("Pässwörd€1"), 1700000000000, bytes(range(16)), "ADSYNC")


def test_vector_keys_and_v2_proofs() -> None:
    keys = sealing.session_keys(PSK, CN, SN)
    assert keys.client_to_daemon.hex() == C2D
    assert keys.daemon_to_client.hex() == D2C
    assert handshake.daemon_proof(PSK, CN, SN, 2).hex() == SP2
    assert handshake.client_proof(PSK, CN, SN, 2).hex() == CP2
    # version 1 proofs differ: the version is bound into the handshake
    assert handshake.daemon_proof(PSK, CN, SN, 1).hex() != SP2


def test_vector_sealed_change_and_ack() -> None:
    keys = sealing.session_keys(PSK, CN, SN)
    frame = encode(change(), 7, 2)
    assert frame == bytes.fromhex(CHANGE_V2)
    sealed = sealing.Sealer(keys.client_to_daemon).seal(frame)
    assert sealed == bytes.fromhex(SEALED_CHANGE)
    assert b"alice" not in sealed
    assert b"P\xc3\xa4ssw" not in sealed  # the doc's public example password
    ack = sealing.Sealer(keys.daemon_to_client).seal(encode(AckReply(AckCode.STORED), 7, 2))
    assert ack == bytes.fromhex(SEALED_ACK)
    payloads = sealing.SealedSplitter(keys.client_to_daemon).feed(sealed)
    assert decode(payloads[0], versions=V2) == (7, change())


def test_counter_nonce_layout() -> None:
    assert sealing.frame_nonce(0) == bytes(12)
    assert sealing.frame_nonce(0x0102) == bytes(10) + b"\x01\x02"


def _stream(n: int) -> tuple[sealing.SessionKeys, list[bytes]]:
    keys = sealing.session_keys(PSK, CN, SN)
    sealer = sealing.Sealer(keys.client_to_daemon)
    return keys, [sealer.seal(encode(change(), i, 2)) for i in range(1, n + 1)]


def test_frames_open_in_order_across_any_split() -> None:
    keys, frames = _stream(3)
    data = b"".join(frames)
    splitter = sealing.SealedSplitter(keys.client_to_daemon)
    got = [p for i in range(len(data)) for p in splitter.feed(data[i : i + 1])]
    assert [decode(p, versions=V2)[0] for p in got] == [1, 2, 3]


@pytest.mark.parametrize("where", [3, 4, 20, -1])  # length, ciphertext start, middle, tag
def test_any_flipped_bit_fails(where: int) -> None:
    keys, frames = _stream(1)
    bad = bytearray(frames[0])
    bad[where] ^= 0x01
    splitter = sealing.SealedSplitter(keys.client_to_daemon)
    with pytest.raises(SealError):
        splitter.feed(bytes(bad))
        splitter.feed(b"\x00" * 200)  # a changed length waits for more bytes, then fails
    assert splitter.failed


def test_replay_reorder_and_reflection_fail() -> None:
    keys, frames = _stream(2)
    replay = sealing.SealedSplitter(keys.client_to_daemon)
    assert len(replay.feed(frames[0])) == 1
    with pytest.raises(SealError):
        replay.feed(frames[0])  # the same frame again: counter 1 expected
    reorder = sealing.SealedSplitter(keys.client_to_daemon)
    with pytest.raises(SealError):
        reorder.feed(frames[1])
    reflect = sealing.SealedSplitter(keys.daemon_to_client)
    with pytest.raises(SealError):
        reflect.feed(frames[0])  # sent back the other way


def test_frames_before_a_bad_one_are_returned_then_the_error() -> None:
    keys, frames = _stream(3)
    bad = bytearray(frames[2])
    bad[10] ^= 0x80
    splitter = sealing.SealedSplitter(keys.client_to_daemon)
    assert len(splitter.feed(frames[0] + frames[1] + bytes(bad))) == 2
    assert splitter.failed
    with pytest.raises(SealError):
        splitter.feed(b"")
    with pytest.raises(SealError):  # and it stays broken
        splitter.feed(frames[2])


def test_key_and_nonce_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sealing.session_keys(bytes(31), CN, SN)
    with pytest.raises(ValueError, match="nonces"):
        sealing.session_keys(PSK, CN[:31], SN)
