"""adsync.filterspool reads the DLL's spool format with the DLL's recovery rules: a damaged
record costs that record only, a torn or zero-filled tail is reported as torn."""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adsync.filterspool import read_spool, spool_key

PSK = bytes(range(32))


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + struct.pack(">H", len(value)) + value


def record(i: int, psk: bytes = PSK) -> bytes:
    pt = b"".join(
        [
            tlv(0x10, f"user{i}".encode()),
            tlv(0x12, f"Pässwörd-{i}".encode()),
            tlv(0x16, struct.pack(">I", 1000 + i)),
            tlv(0x18, struct.pack(">Q", 1_700_000_000_000 + i)),
            tlv(0x19, bytes([i]) * 16),
            tlv(0x1A, struct.pack(">Q", 42 + i)),
        ]
    )
    aad = b"ASP1" + struct.pack(">I", len(pt))
    nonce = os.urandom(12)
    return aad + nonce + AESGCM(spool_key(psk)).encrypt(nonce, pt, aad)


def ten() -> tuple[bytes, list[int]]:
    recs = [record(i) for i in range(10)]
    offs = [sum(len(r) for r in recs[:i]) for i in range(11)]
    return b"".join(recs), offs


def rids(data: bytes, psk: bytes = PSK) -> list[int]:
    return [c.rid - 1000 for c in read_spool(data, psk).changes]


def test_spool_key_vector() -> None:
    """The native suite's vector (docs/windows.md)."""
    assert spool_key(PSK).hex() == (
        "fdcb72a8188ff11d2de5426a956e6fbf6beb8177475f5c8f66b6116673e8fcf4"
    )


def test_all_records_in_order() -> None:
    data, _ = ten()
    report = read_spool(data, PSK)
    assert [c.rid for c in report.changes] == list(range(1000, 1010))
    first = report.changes[0]
    assert (first.account, first.password.reveal(), first.sequence) == ("user0", "Pässwörd-0", 42)
    assert report.skipped == report.torn_bytes == 0
    assert "Pässwörd" not in repr(report)


def test_flipped_bit_in_record_1_costs_that_record() -> None:
    data, offs = ten()
    bad = bytearray(data)
    bad[offs[0] + 25] ^= 0x10
    report = read_spool(bytes(bad), PSK)
    assert [c.rid - 1000 for c in report.changes] == list(range(1, 10))
    assert report.skipped == 1 and report.torn_bytes == 0


def test_damaged_length_and_magic_resynchronise() -> None:
    data, offs = ten()
    bad = bytearray(data)
    bad[offs[3] + 7] ^= 0x01
    bad[offs[6]] = ord("X")
    assert rids(bytes(bad)) == [0, 1, 2, 4, 5, 7, 8, 9]


def test_length_past_the_end_is_not_torn_when_a_record_follows() -> None:
    data, offs = ten()
    bad = bytearray(data)
    bad[offs[8] + 6] = 0x07
    report = read_spool(bytes(bad), PSK)
    assert [c.rid - 1000 for c in report.changes] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert report.torn_bytes == 0


def test_torn_tails() -> None:
    data, offs = ten()
    cut = read_spool(data[: offs[9] + 30], PSK)
    assert len(cut.changes) == 9 and cut.torn_bytes == 30 and cut.skipped == 0
    zeros = read_spool(data + bytes(5000), PSK)
    assert len(zeros.changes) == 10 and zeros.torn_bytes == 5000
    half = read_spool(data[: offs[9] + 25] + bytes(4096), PSK)
    assert len(half.changes) == 9 and half.torn_bytes == 25 + 4096 and half.skipped == 0


def test_lone_record_torn_after_its_header_is_torn_not_foreign() -> None:
    """Power-cut regression (native/lsa_filter/tests/test_spool_power.c): an empty spool,
    one append whose size reached the disk but only its first 14 bytes did: the same rule as
    the DLL's reader calls it torn, where it used to be a damaged record in a file in which
    nothing opens (a set-aside, as if the key had changed)."""
    one = record(0)
    for landed in (14, len(one) - 8):
        report = read_spool(one[:landed] + bytes(len(one) - landed), PSK)
        assert report.changes == [] and report.skipped == 0
        assert report.torn_bytes == len(one)


def test_other_key_opens_nothing() -> None:
    data, _ = ten()
    report = read_spool(data, bytes(32))
    assert report.changes == [] and report.skipped == 1 and report.skipped_bytes == len(data)


def test_garbage_and_empty() -> None:
    assert read_spool(b"", PSK).changes == []
    report = read_spool(b"ASP1ASP1ASP1\x01\x02", PSK)
    assert report.changes == [] and (report.torn_bytes or report.skipped)
