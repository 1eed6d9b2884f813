"""The frame codec against the spec's bytes, and every malformed-frame class."""

from __future__ import annotations

import struct

import pytest

from adsync.ingest.codec import (
    AckReply,
    Auth,
    AuthOk,
    Challenge,
    ChangeMsg,
    Check,
    ErrorReply,
    FrameSplitter,
    Hello,
    Limits,
    ProtocolError,
    VerdictReply,
    decode,
    encode,
    truncate_utf8,
)
from adsync.ingest.wire import AckCode, VerdictCode
from adsync.secret import Secret

SPEC_CHANGE_HEX = """
00 00 00 50
41 44 53 59 01 20 00 00 00 00 00 00 00 00 00 07
10 00 05 61 6c 69 63 65
12 00 0e 50 c3 a4 73 73 77 c3 b6 72 64 e2 82 ac 31
14 00 06 41 44 53 59 4e 43
18 00 08 00 00 01 8b cf e5 68 00
19 00 10 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
"""
SPEC_ACK_HEX = "00 00 00 14  41 44 53 59 01 21 00 00 00 00 00 00 00 00 00 07  20 00 01 00"


def spec_change() -> ChangeMsg:
    return ChangeMsg(
        account="alice",
        password=Secret("Pässwörd€1"),
        domain="ADSYNC",
        changed_at_ms=1700000000000,
        event_id=bytes(range(16)),
    )


def frame(
    msg_type: int,
    fields: list[tuple[int, bytes]],
    *,
    request_id: int = 0x0102030405060708,
    magic: bytes = b"ADSY",
    version: int = 1,
    flags: int = 0,
    tail: bytes = b"",
) -> bytes:
    """A payload (no length prefix) built by hand, so it can be wrong on purpose."""
    body = b"".join(struct.pack(">BH", tag, len(v)) + v for tag, v in fields)
    return struct.pack(">4sBBHQ", magic, version, msg_type, flags, request_id) + body + tail


PASSWORD = "Lëak-me-not§42".encode()
CHANGE_OK: list[tuple[int, bytes]] = [
    (0x10, b"alice"),
    (0x12, PASSWORD),
    (0x18, struct.pack(">Q", 1700000000000)),
    (0x19, bytes(16)),
]


def test_spec_change_frame_encodes_byte_exact() -> None:
    assert encode(spec_change(), 7) == bytes.fromhex(SPEC_CHANGE_HEX)


def test_spec_change_frame_decodes() -> None:
    raw = bytes.fromhex(SPEC_CHANGE_HEX)
    (payload,) = FrameSplitter().feed(raw)
    request_id, message = decode(payload)
    assert request_id == 7
    assert message == spec_change()
    assert isinstance(message, ChangeMsg)
    assert isinstance(message.password, Secret)
    assert message.password.reveal_bytes() == "Pässwörd€1".encode()


def test_spec_ack_encodes_and_decodes() -> None:
    raw = bytes.fromhex(SPEC_ACK_HEX)
    assert encode(AckReply(AckCode.STORED), 7) == raw
    assert decode(raw[4:]) == (7, AckReply(AckCode.STORED))


@pytest.mark.parametrize(
    "message",
    [
        Hello(bytes(range(32)), "filter/1.0"),
        Hello(bytes(32)),
        Challenge(b"\x01" * 32, b"\x02" * 32),
        Auth(b"\x03" * 32),
        AuthOk(),
        Check("bob", Secret("pw"), "Bob B", True, "DOM", "dc1"),
        Check("bob", Secret("pw")),
        VerdictReply(VerdictCode.REJECT, "too short"),
        VerdictReply(VerdictCode.UNDECIDED),
        ChangeMsg(
            "bob", Secret("pw"), 1, b"\x09" * 16, "DOM", "dc1", 1105, b"\x07" * 16, 2**63 - 1
        ),
        AckReply(AckCode.BUSY, "queue full"),
        ErrorReply("bad magic"),
        ErrorReply(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_type_round_trips(message: object) -> None:
    raw = encode(message, 2**64 - 1)  # type: ignore[arg-type]
    (payload,) = FrameSplitter().feed(raw)
    assert decode(payload) == (2**64 - 1, message)


def test_password_decodes_into_secret_that_does_not_print() -> None:
    _, message = decode(frame(0x20, CHANGE_OK))
    assert isinstance(message, ChangeMsg)
    shown = repr(message) + str(message)
    leaked = PASSWORD.decode() in shown
    assert not leaked


def test_unknown_tags_are_skipped_even_repeated() -> None:
    fields = [*CHANGE_OK, (0x7E, b"future"), (0x7E, b"again"), (0x20, b"\x01")]
    _, message = decode(frame(0x20, fields))
    assert isinstance(message, ChangeMsg)
    assert message.account == "alice"


def test_header_only_frames_are_valid_for_types_without_fields() -> None:
    assert decode(frame(0x04, [], request_id=3)) == (3, AuthOk())


def test_guid_rid_sequence_decoded() -> None:
    fields = [
        *CHANGE_OK,
        (0x16, struct.pack(">I", 1105)),
        (0x17, bytes(range(16))),
        (0x1A, struct.pack(">Q", 42)),
        (0x15, b"dc1.example.com"),
    ]
    _, message = decode(frame(0x20, fields))
    assert isinstance(message, ChangeMsg)
    assert (message.rid, message.object_guid, message.sequence, message.source_host) == (
        1105,
        bytes(range(16)),
        42,
        "dc1.example.com",
    )


MALFORMED: list[tuple[str, bytes, str]] = [
    ("shorter than header", frame(0x20, [])[:15], "shorter than its header"),
    ("bad magic", frame(0x20, CHANGE_OK, magic=b"ADSX"), "bad magic"),
    ("bad version", frame(0x20, CHANGE_OK, version=2), "unsupported version"),
    ("bad flags", frame(0x20, CHANGE_OK, flags=1), "flags must be 0"),
    ("unknown type", frame(0x55, CHANGE_OK), "unknown message type 0x55"),
    ("truncated tlv header", frame(0x20, CHANGE_OK, tail=b"\x14\x00"), "truncated field"),
    ("tlv overruns", frame(0x20, CHANGE_OK, tail=b"\x14\x00\x10abc"), "overruns"),
    ("repeated known tag", frame(0x20, [*CHANGE_OK, (0x10, b"bob")]), "0x10 repeated"),
    ("bad utf-8 account", frame(0x20, [(0x10, b"\xc3\x28"), *CHANGE_OK[1:]]), "UTF-8"),
    ("bad utf-8 password", frame(0x20, [CHANGE_OK[0], (0x12, b"\xff"), *CHANGE_OK[2:]]), "UTF-8"),
    ("NUL in account", frame(0x20, [(0x10, b"al\x00ce"), *CHANGE_OK[1:]]), "NUL"),
    ("NUL in password", frame(0x20, [CHANGE_OK[0], (0x12, b"p\x00w"), *CHANGE_OK[2:]]), "NUL"),
    ("empty account", frame(0x20, [(0x10, b""), *CHANGE_OK[1:]]), "empty"),
    ("empty password", frame(0x20, [CHANGE_OK[0], (0x12, b""), *CHANGE_OK[2:]]), "password"),
    ("missing account", frame(0x20, CHANGE_OK[1:]), "0x10 missing"),
    ("missing password", frame(0x20, [CHANGE_OK[0], *CHANGE_OK[2:]]), "0x12 missing"),
    ("missing changed_at", frame(0x20, [*CHANGE_OK[:2], CHANGE_OK[3]]), "0x18 missing"),
    ("missing event id", frame(0x20, CHANGE_OK[:3]), "0x19 missing"),
    ("check missing password", frame(0x10, [(0x10, b"bob")]), "0x12 missing"),
    ("oversize account", frame(0x20, [(0x10, b"a" * 1025), *CHANGE_OK[1:]]), "longer than 1024"),
    (
        "oversize password",
        frame(0x20, [CHANGE_OK[0], (0x12, b"p" * 1025), *CHANGE_OK[2:]]),
        "1..1024",
    ),
    ("oversize domain", frame(0x20, [*CHANGE_OK, (0x14, b"d" * 1025)]), "longer than 1024"),
    (
        "oversize full name",
        frame(0x10, [(0x10, b"a"), (0x12, b"p"), (0x11, b"f" * 1025)]),
        "longer",
    ),
    ("event id 15 bytes", frame(0x20, [*CHANGE_OK[:3], (0x19, bytes(15))]), "must be 16 bytes"),
    (
        "changed_at 4 bytes",
        frame(0x20, [*CHANGE_OK[:2], (0x18, bytes(4)), CHANGE_OK[3]]),
        "8 bytes",
    ),
    ("rid 2 bytes", frame(0x20, [*CHANGE_OK, (0x16, bytes(2))]), "must be 4 bytes"),
    ("guid 15 bytes", frame(0x20, [*CHANGE_OK, (0x17, bytes(15))]), "must be 16 bytes"),
    ("sequence 9 bytes", frame(0x20, [*CHANGE_OK, (0x1A, bytes(9))]), "must be 8 bytes"),
    ("nonce 31 bytes", frame(0x01, [(0x01, bytes(31))]), "must be 32 bytes"),
    ("proof 33 bytes", frame(0x03, [(0x04, bytes(33))]), "must be 32 bytes"),
    (
        "set_operation 2 bytes",
        frame(0x10, [(0x10, b"a"), (0x12, b"p"), (0x13, b"\x00\x01")]),
        "1 bytes",
    ),
    ("set_operation value 2", frame(0x10, [(0x10, b"a"), (0x12, b"p"), (0x13, b"\x02")]), "0 or 1"),
    ("ack status 3", frame(0x21, [(0x20, b"\x03")]), "unknown ACK status"),
    ("verdict status 9", frame(0x11, [(0x20, b"\x09")]), "unknown VERDICT status"),
    ("ack without status", frame(0x21, []), "0x20 missing"),
]


@pytest.mark.parametrize(
    ("payload", "expected"), [(p, e) for _, p, e in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_payload_raises_protocol_error(payload: bytes, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(payload)
    assert expected in info.value.reason
    leaked = PASSWORD.decode() in info.value.reason or PASSWORD.decode() in str(info.value)
    assert not leaked


def test_protocol_error_carries_request_id_once_header_is_read() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame(0x20, CHANGE_OK[1:], request_id=99))
    assert info.value.request_id == 99
    with pytest.raises(ProtocolError) as info:
        decode(frame(0x20, CHANGE_OK, magic=b"XXXX", request_id=99))
    assert info.value.request_id == 0


def test_configured_field_limits_apply() -> None:
    small = Limits(max_field=8, max_password=4)
    ok = frame(0x20, [(0x10, b"a" * 8), (0x12, b"p" * 4), *CHANGE_OK[2:]])
    assert decode(ok, small)[1].account == "a" * 8  # type: ignore[union-attr]
    with pytest.raises(ProtocolError, match="longer than 8"):
        decode(frame(0x20, [(0x10, b"a" * 9), *CHANGE_OK[1:]]), small)
    with pytest.raises(ProtocolError, match=r"1\.\.4"):
        decode(frame(0x20, [CHANGE_OK[0], (0x12, b"p" * 5), *CHANGE_OK[2:]]), small)


@pytest.mark.parametrize("length", [0, 15, 65537, 2**32 - 1])
def test_splitter_refuses_length_as_soon_as_prefix_is_known(length: int) -> None:
    splitter = FrameSplitter()
    assert splitter.feed(struct.pack(">I", length)[:3]) == []
    with pytest.raises(ProtocolError, match="frame length"):
        splitter.feed(struct.pack(">I", length)[3:])


def test_splitter_configured_max_frame() -> None:
    with pytest.raises(ProtocolError, match=r"outside 16\.\.64"):
        FrameSplitter(64).feed(struct.pack(">I", 65))
    assert FrameSplitter(64).feed(struct.pack(">I", 16) + bytes(16)) == [bytes(16)]


def test_splitter_reassembles_byte_by_byte_and_batches() -> None:
    stream = encode(spec_change(), 1) + encode(AckReply(AckCode.BUSY, "x"), 2)
    splitter = FrameSplitter()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += splitter.feed(stream[i : i + 1])
        assert splitter.in_frame == (i + 1 not in (84, len(stream)))
    assert [decode(p)[0] for p in out] == [1, 2]
    assert len(FrameSplitter().feed(stream * 3)) == 6


def test_encode_refuses_oversize_and_bad_request_id() -> None:
    with pytest.raises(ValueError, match="65535"):
        encode(ErrorReply("x" * 70000), 1)
    with pytest.raises(ValueError, match="64 bits"):
        encode(AuthOk(), 2**64)


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_frame"):
        Limits(max_frame=15)
    with pytest.raises(ValueError, match="max_frame"):
        Limits(max_frame=65537)
    with pytest.raises(ValueError, match="idle_timeout"):
        Limits(idle_timeout=0)
    assert Limits() == Limits(65536, 1024, 1024, 64, 10.0, 300.0, 5.0, 256)


def test_truncate_utf8_cuts_on_character_boundary() -> None:
    assert truncate_utf8("€€", 4) == "€"
    assert truncate_utf8("abc", 3) == "abc"


def test_splitter_returns_complete_frames_before_a_bad_length() -> None:
    splitter = FrameSplitter()
    good = encode(AuthOk(), 1)
    assert splitter.feed(good + struct.pack(">I", 3)) == [good[4:]]
    assert splitter.failed
    with pytest.raises(ProtocolError, match="frame length 3"):
        splitter.feed(b"")


def test_docs_extra_examples_byte_exact() -> None:
    check = "00 00 00 1f 41 44 53 59 01 10 00 00 00 00 00 00 00 00 00 01"
    check += " 10 00 03 62 6f 62 12 00 02 70 77 13 00 01 00"
    assert encode(Check("bob", Secret("pw")), 1) == bytes.fromhex(check)
    error = "00 00 00 1c 41 44 53 59 01 7f 00 00 00 00 00 00 00 00 00 00"
    error += " 21 00 09 62 61 64 20 6d 61 67 69 63"
    assert encode(ErrorReply("bad magic"), 0) == bytes.fromhex(error)


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        (0x18, 253_402_300_800_000, "field 0x18 (changed_at_ms) must be at most 253402300799999"),
        (0x18, 2**64 - 1, "field 0x18 (changed_at_ms) must be at most 253402300799999"),
        (0x1A, 2**63, "field 0x1a (sequence) must be at most 9223372036854775807"),
    ],
)
def test_values_the_daemon_could_not_store_are_refused_at_the_door(
    tag: int, value: int, reason: str
) -> None:
    """Found by the flood test (issue 13): a CHANGE dated after 9999 or with a sequence
    beyond signed 64 bits was decoded, then failed the queue's whole group commit."""
    fields = [
        (0x10, b"alice"),
        (0x12, b"pw"),
        (0x18, (1_700_000_000_000).to_bytes(8, "big")),
        (0x19, bytes(16)),
    ]
    fields = [f for f in fields if f[0] != tag] + [(tag, value.to_bytes(8, "big"))]
    body = b"".join(struct.pack(">BH", t, len(v)) + v for t, v in fields)
    payload = struct.pack(">4sBBHQ", b"ADSY", 1, 0x20, 0, 5) + body
    with pytest.raises(ProtocolError) as caught:
        decode(payload)
    assert caught.value.reason == reason
