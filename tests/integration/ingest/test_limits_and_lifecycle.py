"""Connection limits, pipelining with back-pressure, handler failures, and shutdown."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from adsync.ingest.codec import AckReply, ErrorReply, Limits, VerdictReply
from adsync.ingest.handler import Ack, AckStatus
from adsync.ingest.wire import AckCode, VerdictCode
from adsync.plugin import CheckResult

from .conftest import Harness, StubHandler, change_fields, raw_frame

PW = "Limit-Pässwort-99"
PWB = PW.encode()
BUSY_REASON = "the daemon could not store the change; resend later"


async def test_slow_sender_is_closed(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start(Limits(frame_timeout=0.2))
    raw = await harness.unix(server)
    frame = raw_frame(0x20, change_fields(PWB), request_id=1)
    await raw.send(frame[:10])  # and never the rest
    replies = await raw.replies_until_eof()
    assert replies == [(0, ErrorReply("frame not completed in time"))]
    assert server.counters.slow_senders_closed == 1
    assert handler.changes == []


async def test_slow_sender_on_tcp_handshake_is_closed(harness: Harness) -> None:
    server = await harness.start(Limits(handshake_timeout=0.2), unix=False, tcp=True)
    raw = await harness.tcp(server, authed=False)  # connects and sends nothing
    assert await raw.replies_until_eof() == [(0, ErrorReply("handshake not completed in time"))]


async def test_idle_connection_is_closed(harness: Harness) -> None:
    server = await harness.start(Limits(idle_timeout=0.2))
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    assert await raw.reply() == (1, AckReply(AckCode.STORED))
    assert await raw.replies_until_eof() == [(0, ErrorReply("idle timeout"))]
    assert server.counters.idle_closed == 1


async def test_waiting_for_own_answer_is_not_idle(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start(Limits(idle_timeout=0.1))
    handler.gate = asyncio.Event()
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    await asyncio.sleep(0.5)  # several idle periods while the handler works
    handler.gate.set()
    assert await raw.reply() == (1, AckReply(AckCode.STORED))
    assert server.counters.idle_closed == 0


async def test_max_connections_per_transport(harness: Harness, until: Callable[..., Any]) -> None:
    """Each transport has its own ``max_connections``: TCP sources never take the Unix
    socket's room (issue 13, item 1), and the Unix socket never takes TCP's. One over the
    limit waits up to the frame timeout for a slot, then gets the ERROR."""
    server = await harness.start(Limits(max_connections=2, frame_timeout=0.3), tcp=True)
    first = await harness.unix(server)
    await harness.unix(server)
    await until(lambda: server.counters.connections_open == 2)
    third = await harness.unix(server)
    assert await third.replies_until_eof() == [(0, ErrorReply("too many connections"))]
    assert server.counters.connections_over_limit == 1
    tcp = [await harness.tcp(server), await harness.tcp(server)]  # the Unix pool is full
    extra = await harness.tcp(server, authed=False)
    assert await extra.handshake() == (2, ErrorReply("too many connections"))  # AUTH's id
    await tcp[0].send(raw_frame(0x20, change_fields(PWB), request_id=5))
    assert await tcp[0].reply() == (5, AckReply(AckCode.STORED))
    fourth = await harness.unix(server)  # waits for a slot ...
    await fourth.send(raw_frame(0x20, change_fields(PWB), request_id=4))
    first.close()  # ... which this frees
    assert await fourth.reply() == (4, AckReply(AckCode.STORED))


async def test_handshakes_have_their_own_budget_fair_per_peer(
    harness: Harness, until: Callable[..., Any]
) -> None:
    """Unauthenticated connections take handshake slots only; one peer (here: one uid)
    holds at most its share, and its newest push out its oldest, never another source."""
    limits = Limits(max_connections=2, max_handshakes=4, max_handshakes_per_peer=2)
    server = await harness.start(limits, tcp=True)
    idle = [await harness.tcp(server, authed=False) for _ in range(6)]
    await until(lambda: server.counters.handshakes_displaced == 4)
    assert [await raw.replies_until_eof() for raw in idle[:4]] == [
        [(0, ErrorReply("too many connections"))]
    ] * 4
    source = await harness.tcp(server)  # an authenticated source still gets in ...
    await source.send(raw_frame(0x20, change_fields(PWB), request_id=9))
    assert await source.reply() == (9, AckReply(AckCode.STORED))
    unix = await harness.unix(server)  # ... and so does the Unix socket
    await unix.send(raw_frame(0x20, change_fields(PWB), request_id=3))
    assert await unix.reply() == (3, AckReply(AckCode.STORED))


async def test_pipelined_changes_are_handled_concurrently_and_replied_by_id(
    harness: Harness, handler: StubHandler, until: Callable[..., Any]
) -> None:
    server = await harness.start()
    handler.gate = asyncio.Event()
    raw = await harness.unix(server)
    await raw.send(
        b"".join(raw_frame(0x20, change_fields(PWB), request_id=100 + i) for i in range(20))
    )
    await until(lambda: handler.running == 20)  # all in the handler at once: group commit
    handler.gate.set()
    replies = [await raw.reply() for _ in range(20)]
    assert sorted(r[0] for r in replies if r) == list(range(100, 120))
    assert all(r is not None and r[1] == AckReply(AckCode.STORED) for r in replies)
    assert server.counters.changes_received == 20


async def test_changes_of_one_read_reach_the_handler_in_one_call(
    harness: Harness, handler: StubHandler
) -> None:
    server = await harness.start()
    raw = await harness.unix(server)
    ids = list(range(200, 230))
    await raw.send(b"".join(raw_frame(0x20, change_fields(PWB), request_id=i) for i in ids))
    replies = [await raw.reply() for _ in ids]
    assert sorted(r[0] for r in replies if r) == ids
    assert all(r is not None and r[1] == AckReply(AckCode.STORED) for r in replies)
    assert sum(handler.batches) == len(ids)
    assert max(handler.batches) > 1  # one write of 30 frames is not 30 handler calls
    assert server.counters.changes_received == len(ids)


async def test_changes_read_before_a_malformed_frame_are_still_answered(
    harness: Harness, handler: StubHandler
) -> None:
    server = await harness.start()
    raw = await harness.unix(server)
    good = b"".join(raw_frame(0x20, change_fields(PWB), request_id=i) for i in (1, 2, 3))
    await raw.send(good + raw_frame(0x20, change_fields(PWB), request_id=4, magic=b"XXXX"))
    replies = await raw.replies_until_eof()
    assert sorted(r[0] for r in replies[:3]) == [1, 2, 3]
    assert all(r[1] == AckReply(AckCode.STORED) for r in replies[:3])
    assert replies[3:] == [(0, ErrorReply("bad magic"))]
    assert len(handler.changes) == 3


async def test_handler_answering_the_wrong_number_of_acks_gets_busy_for_all(
    harness: Harness, handler: StubHandler, captured_logs: list[dict[str, Any]]
) -> None:
    server = await harness.start()

    async def no_acks(changes: Any, peer: Any) -> list[Ack]:
        return []

    handler.store_changes = no_acks  # type: ignore[method-assign]
    raw = await harness.unix(server)
    await raw.send(b"".join(raw_frame(0x20, change_fields(PWB), request_id=i) for i in (1, 2)))
    replies = [await raw.reply(), await raw.reply()]
    assert sorted(r[0] for r in replies if r) == [1, 2]
    assert all(r is not None and r[1] == AckReply(AckCode.BUSY, BUSY_REASON) for r in replies)
    errors = [e["error"] for e in captured_logs if e["event"] == "ingest_handler_error"]
    assert errors and set(errors) == {"TypeError"}
    assert server.counters.handler_errors == len(errors)


async def test_in_flight_cap_applies_back_pressure(
    harness: Harness, handler: StubHandler, until: Callable[..., Any]
) -> None:
    server = await harness.start(Limits(max_in_flight=3))
    handler.gate = asyncio.Event()
    raw = await harness.unix(server)
    await raw.send(
        b"".join(raw_frame(0x20, change_fields(PWB), request_id=i) for i in range(1, 11))
    )
    await until(lambda: handler.running == 3)
    await asyncio.sleep(0.05)
    assert handler.running == 3  # the rest wait unread
    handler.gate.set()
    replies = [await raw.reply() for _ in range(10)]
    assert sorted(r[0] for r in replies if r) == list(range(1, 11))
    assert handler.max_running == 3


async def test_handler_exception_answers_busy_and_undecided(
    harness: Harness,
    handler: StubHandler,
    captured_logs: list[dict[str, Any]],
    leaks: Callable[[list[str], list[str]], int],
) -> None:
    server = await harness.start()
    handler.fail = RuntimeError(f"database exploded while storing {PW}")
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    reply = await raw.reply()
    assert reply is not None and reply[0] == 1
    assert isinstance(reply[1], AckReply) and reply[1].status is AckCode.BUSY
    await raw.send(raw_frame(0x10, change_fields(PWB)[:2], request_id=2))
    reply = await raw.reply()
    assert reply is not None and reply[0] == 2
    assert isinstance(reply[1], VerdictReply) and reply[1].status is VerdictCode.UNDECIDED
    assert server.counters.handler_errors == 2
    errors = [e for e in captured_logs if e["event"] == "ingest_handler_error"]
    assert [e["error"] for e in errors] == ["RuntimeError", "RuntimeError"]
    assert leaks([repr(e) for e in captured_logs], [PW]) == 0
    handler.fail = None  # the connection is still usable
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=3))
    assert await raw.reply() == (3, AckReply(AckCode.STORED))


@pytest.mark.parametrize(
    "echo",
    [PW, json.dumps(PW), urllib.parse.quote(PW), PWB.hex(), base64.b64encode(PWB).decode()],
    ids=["raw", "json", "percent", "hex", "base64"],
)
async def test_reason_holding_the_password_is_withheld(
    harness: Harness, handler: StubHandler, echo: str
) -> None:
    server = await harness.start()
    handler.ack = Ack(AckStatus.REFUSED, f"policy: {echo} is in the dictionary")
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    reply = await raw.reply()
    assert reply is not None and isinstance(reply[1], AckReply)
    assert reply[1].status is AckCode.REFUSED
    leaked = PW in reply[1].reason or echo in reply[1].reason
    assert not leaked
    assert "withheld" in reply[1].reason


async def test_long_reason_is_truncated_to_the_field_limit(
    harness: Harness, handler: StubHandler
) -> None:
    server = await harness.start()
    handler.ack = Ack(AckStatus.BUSY, "€" * 2000)
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    reply = await raw.reply()
    assert reply is not None and isinstance(reply[1], AckReply)
    assert reply[1].reason == "€" * 341  # 1023 bytes: whole characters within 1024


async def test_stop_lets_in_flight_requests_answer_then_closes(
    harness: Harness, handler: StubHandler, until: Callable[..., Any]
) -> None:
    server = await harness.start(tcp=True)
    handler.gate = asyncio.Event()
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    await until(lambda: handler.running == 1)
    stopping = asyncio.create_task(server.stop(grace=10))
    await until(lambda: server.unix_path is not None and not server.unix_path.exists())
    handler.gate.set()
    assert await raw.reply() == (1, AckReply(AckCode.STORED))
    assert await raw.reply() is None
    await stopping
    assert server.counters.connections_open == 0


async def test_stop_past_grace_drops_unanswered(
    harness: Harness, handler: StubHandler, until: Callable[..., Any]
) -> None:
    server = await harness.start()
    handler.gate = asyncio.Event()  # never opened before the grace ends
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(PWB), request_id=1))
    await until(lambda: handler.running == 1)
    await server.stop(grace=0.05)
    assert server.counters.connections_open == 0
    assert handler.running == 0  # the handler call was cancelled
    try:
        leftover = await raw.replies_until_eof()
    except ConnectionResetError:
        leftover = []
    assert leftover == []  # no ACK for what was not stored


async def test_client_that_never_reads_its_replies_is_dropped(
    harness: Harness, handler: StubHandler, until: Callable[..., Any]
) -> None:
    server = await harness.start(Limits(frame_timeout=0.2))
    handler.result = CheckResult.accept("r" * 1000)  # ~1 KiB per reply fills the buffers fast
    raw = await harness.unix(server)
    check = raw_frame(0x10, change_fields(PWB)[:2], request_id=1)
    raw.writer.write(check * 3000)  # never read: the server's writes must stall, then give up
    await until(lambda: server.counters.slow_readers_closed == 1)
    await until(lambda: server.counters.connections_open == 0)
    other = await harness.unix(server)
    await other.send(raw_frame(0x20, change_fields(PWB), request_id=2))
    assert await other.reply() == (2, AckReply(AckCode.STORED))
