"""Every malformed-frame class against the real server: ERROR (when delimited), close,
and the daemon keeps serving the next connection. No password reaches a log line."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from adsync.ingest.codec import AckReply, ErrorReply, Limits
from adsync.ingest.server import IngestServer
from adsync.ingest.wire import AckCode

from .conftest import Harness, StubHandler, change_fields, raw_frame

PW = "Lëak-me-not§42"
PWB = PW.encode()
RID = 0x0102030405060708
NO_ID = 0

# (name, frame bytes, expected reason substring, expected request id in the ERROR)
CASES: list[tuple[str, bytes, str, int]] = [
    ("length 15", struct.pack(">I", 15) + bytes(15), "frame length 15", NO_ID),
    ("length 0", struct.pack(">I", 0), "frame length 0", NO_ID),
    ("length 65537", struct.pack(">I", 65537) + b"ADSY", "frame length 65537", NO_ID),
    ("bad magic", raw_frame(0x20, change_fields(PWB), magic=b"ADSX"), "bad magic", NO_ID),
    ("bad version", raw_frame(0x20, change_fields(PWB), version=2), "unsupported version", RID),
    ("bad flags", raw_frame(0x20, change_fields(PWB), flags=0x8000), "flags must be 0", RID),
    ("unknown type", raw_frame(0x33, change_fields(PWB)), "unknown message type 0x33", RID),
    ("truncated tlv", raw_frame(0x20, change_fields(PWB), tail=b"\x15"), "truncated field", RID),
    ("tlv overruns", raw_frame(0x20, change_fields(PWB), tail=b"\x15\x00\x09ab"), "overruns", RID),
    (
        "repeated known tag",
        raw_frame(0x20, [*change_fields(PWB), (0x12, PWB)]),
        "0x12 repeated",
        RID,
    ),
    ("bad utf-8", raw_frame(0x20, change_fields(PWB + b"\xc0")), "not valid UTF-8", RID),
    ("NUL", raw_frame(0x20, change_fields(PWB, account=b"a\x00")), "contains NUL", RID),
    ("missing required", raw_frame(0x20, change_fields(PWB)[:3]), "0x19 missing", RID),
    (
        "oversize field",
        raw_frame(0x20, change_fields(PWB, account=b"x" * 1025)),
        "longer than 1024",
        RID,
    ),
    ("oversize password", raw_frame(0x20, change_fields(PWB * 70)), "password must be", RID),
    (
        "wrong fixed size",
        raw_frame(0x20, change_fields(PWB, event_id=bytes(8))),
        "must be 16 bytes",
        RID,
    ),
    (
        "wrong fixed size rid",
        raw_frame(0x20, [*change_fields(PWB), (0x16, b"\x01")]),
        "must be 4 bytes",
        RID,
    ),
    ("daemon-only ACK", raw_frame(0x21, [(0x20, b"\x00")]), "ACK is sent by the daemon", RID),
    ("daemon-only VERDICT", raw_frame(0x11, [(0x20, b"\x00")]), "sent by the daemon", RID),
    ("daemon-only ERROR", raw_frame(0x7F, []), "sent by the daemon", RID),
    ("daemon-only AUTH_OK", raw_frame(0x04, []), "sent by the daemon", RID),
    (
        "daemon-only CHALLENGE",
        raw_frame(0x02, [(0x01, bytes(32)), (0x03, bytes(32))]),
        "sent by the daemon",
        RID,
    ),
    ("HELLO on unix", raw_frame(0x01, [(0x01, bytes(32))]), "TCP transport only", RID),
    ("AUTH on unix", raw_frame(0x03, [(0x04, bytes(32))]), "TCP transport only", RID),
    (
        "CHECK without password",
        raw_frame(0x10, [(0x10, b"bob"), (0x11, PWB)]),
        "0x12 missing",
        RID,
    ),
]


async def assert_still_serving(harness: Harness, server: IngestServer, tcp: bool) -> None:
    raw = await (harness.tcp(server) if tcp else harness.unix(server))
    await raw.send(raw_frame(0x20, change_fields(b"fine"), request_id=5))
    assert await raw.reply() == (5, AckReply(AckCode.STORED))


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize(
    ("data", "reason", "request_id"),
    [(d, r, i) for _, d, r, i in CASES],
    ids=[n for n, *_ in CASES],
)
async def test_malformed_frame_gets_error_then_close_and_server_goes_on(
    harness: Harness,
    handler: StubHandler,
    captured_logs: list[dict[str, Any]],
    leaks: Callable[[list[str], list[str]], int],
    transport: str,
    data: bytes,
    reason: str,
    request_id: int,
) -> None:
    tcp = transport == "tcp"
    if tcp and "on unix" in reason:
        reason = "after the handshake is done"
    if tcp and reason == "TCP transport only":
        reason = "after the handshake is done"
    server = await harness.start(unix=not tcp, tcp=tcp)
    raw = await (harness.tcp(server) if tcp else harness.unix(server))
    # a good request first, pipelined with the bad one: it is still answered
    await raw.send(raw_frame(0x20, change_fields(b"good-one"), request_id=3) + data)
    replies = await raw.replies_until_eof()
    assert replies[0] == (3, AckReply(AckCode.STORED))
    assert len(replies) == 2
    got_id, error = replies[1]
    assert isinstance(error, ErrorReply)
    assert reason in error.reason
    assert got_id == request_id
    assert server.counters.frames_refused == 1
    assert len(handler.changes) == 1  # only the good one reached the handler
    await assert_still_serving(harness, server, tcp)

    refusals = [e for e in captured_logs if e["event"] == "ingest_protocol_error"]
    assert len(refusals) == 1
    assert refusals[0]["reason"] == error.reason
    assert refusals[0]["peer"]
    lines = [repr(e) for e in captured_logs] + [error.reason]
    assert leaks(lines, [PW, "good-one", "fine"]) == 0


def tcp_order_cases() -> list[tuple[str, list[bytes], str]]:
    hello = raw_frame(0x01, [(0x01, bytes(32))], request_id=1)
    return [
        ("CHANGE first", [raw_frame(0x20, change_fields(PWB))], "expected HELLO first, got CHANGE"),
        ("CHECK first", [raw_frame(0x10, change_fields(PWB)[:2])], "expected HELLO first"),
        ("AUTH first", [raw_frame(0x03, [(0x04, bytes(32))])], "expected HELLO first, got AUTH"),
        ("ACK first", [raw_frame(0x21, [(0x20, b"\x00")])], "sent by the daemon"),
        (
            "CHANGE before AUTH",
            [hello, raw_frame(0x20, change_fields(PWB))],
            "expected AUTH after HELLO, got CHANGE",
        ),
        ("HELLO twice", [hello, hello], "expected AUTH after HELLO, got HELLO"),
        ("bad HELLO", [raw_frame(0x01, [(0x01, bytes(31))])], "must be 32 bytes"),
    ]


@pytest.mark.parametrize(
    ("frames", "reason"),
    [(f, r) for _, f, r in tcp_order_cases()],
    ids=[n for n, *_ in tcp_order_cases()],
)
async def test_tcp_handshake_order_enforced(
    harness: Harness,
    handler: StubHandler,
    captured_logs: list[dict[str, Any]],
    leaks: Callable[[list[str], list[str]], int],
    frames: list[bytes],
    reason: str,
) -> None:
    server = await harness.start(unix=False, tcp=True)
    raw = await harness.tcp(server, authed=False)
    for data in frames:
        await raw.send(data)
    replies = await raw.replies_until_eof()
    error = replies[-1][1]
    assert isinstance(error, ErrorReply)
    assert reason in error.reason
    assert handler.changes == [] and handler.checks == []
    await assert_still_serving(harness, server, tcp=True)
    assert leaks([repr(e) for e in captured_logs], [PW]) == 0


async def test_truncated_frame_then_eof_is_refused_quietly(
    harness: Harness, handler: StubHandler, captured_logs: list[dict[str, Any]]
) -> None:
    server = await harness.start()
    raw = await harness.unix(server)
    data = raw_frame(0x20, change_fields(PWB))
    await raw.send(data[:-5])
    raw.writer.write_eof()
    assert await raw.replies_until_eof() == []
    assert handler.changes == []
    assert server.counters.frames_refused == 1
    await assert_still_serving(harness, server, tcp=False)


async def test_small_configured_frame_limit(harness: Harness) -> None:
    server = await harness.start(Limits(max_frame=64))
    raw = await harness.unix(server)
    big = raw_frame(0x20, change_fields(b"p" * 40))
    assert len(big) - 4 > 64
    await raw.send(big)
    replies = await raw.replies_until_eof()
    assert [type(m) for _, m in replies] == [ErrorReply]
    assert "outside 16..64" in replies[0][1].reason  # type: ignore[union-attr]
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(b"p"), request_id=9))
    assert await raw.reply() == (9, AckReply(AckCode.STORED))


async def test_small_configured_field_limits(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start(Limits(max_field=8, max_password=6))
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(b"p" * 6, account=b"a" * 8), request_id=1))
    assert await raw.reply() == (1, AckReply(AckCode.STORED))
    await raw.send(raw_frame(0x20, change_fields(b"p" * 7, account=b"a"), request_id=2))
    replies = await raw.replies_until_eof()
    assert [(i, type(m)) for i, m in replies] == [(2, ErrorReply)]
    assert "password must be 1..6 bytes" in replies[0][1].reason  # type: ignore[union-attr]
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(b"p", account=b"a" * 9), request_id=3))
    replies = await raw.replies_until_eof()
    assert "longer than 8 bytes" in replies[0][1].reason  # type: ignore[union-attr]
    assert [c.account for c, _ in handler.changes] == ["a" * 8]
