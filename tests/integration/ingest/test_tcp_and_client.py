"""TCP transport with the PSK handshake, and the project's blocking client on both transports."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from typing import Any

import pytest

from adsync.ingest.client import (
    DaemonAuthError,
    DaemonError,
    IngestClient,
    IngestTimeout,
    change_message,
)
from adsync.ingest.codec import (
    Challenge,
    ErrorReply,
    FrameSplitter,
    Hello,
    decode,
    decode_header,
    encode,
)
from adsync.ingest.handler import Ack, AckStatus
from adsync.ingest.server import IngestServer
from adsync.ingest.wire import AckCode, MsgType, VerdictCode
from adsync.plugin import CheckResult
from adsync.secret import Secret

from .conftest import PSK, Harness, StubHandler

PASSWORD = "Tcp-Pässwörd€-7"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_tcp_client_handshake_change_and_check(
    harness: Harness, handler: StubHandler
) -> None:
    server = await harness.start(unix=False, tcp=True)
    host, port = server.tcp_address  # type: ignore[misc]
    guid = uuid.uuid4()
    handler.result = CheckResult.reject("too short")

    def talk() -> tuple[Any, Any]:
        with IngestClient.tcp(host, port, PSK, timeout=10) as client:
            ack = client.change(
                account="alice",
                password=Secret(PASSWORD),
                domain="ADSYNC",
                changed_at_ms=1700000000000,
                event_id=b"\x01" * 16,
                source_host="dc1",
                rid=1105,
                object_guid=guid,
                sequence=7,
            )
            verdict = client.check(
                account="bob", password=Secret(PASSWORD), full_name="Bob", set_operation=True
            )
            return ack, verdict

    ack, verdict = await asyncio.to_thread(talk)
    assert (ack.status, ack.reason) == (AckCode.STORED, "")
    assert (verdict.status, verdict.reason) == (VerdictCode.REJECT, "too short")
    ((change, peer),) = handler.changes
    assert peer.transport == "tcp" and peer.description.startswith("127.0.0.1:")
    assert digest(change.password.reveal_bytes()) == digest(PASSWORD.encode())
    assert (change.account, change.domain, change.source_host) == ("alice", "ADSYNC", "dc1")
    assert (change.rid, change.object_guid, change.sequence) == (1105, guid, 7)
    assert (change.changed_at_ms, change.event_id) == (1700000000000, b"\x01" * 16)
    ((candidate, _),) = handler.checks
    assert (candidate.account, candidate.full_name, candidate.set_operation) == ("bob", "Bob", True)


async def test_wrong_psk_is_refused_with_error_and_close(
    harness: Harness, handler: StubHandler, captured_logs: list[dict[str, Any]]
) -> None:
    server = await harness.start(unix=False, tcp=True)
    raw = await harness.tcp(server, authed=False)
    reply = await raw.handshake(psk=bytes(32))
    assert reply is not None
    assert reply == (2, ErrorReply("authentication failed"))
    assert await raw.reply() is None  # closed
    assert server.counters.auth_failures == 1
    assert [e["event"] for e in captured_logs if e["event"] == "ingest_auth_failed"] == [
        "ingest_auth_failed"
    ]
    # the project's client with a wrong key already fails to verify the daemon's proof
    host, port = server.tcp_address  # type: ignore[misc]
    with pytest.raises(DaemonAuthError):
        await asyncio.to_thread(IngestClient.tcp, host, port, bytes(32), timeout=10)
    await harness.tcp(server)  # a right key still works


async def test_client_refuses_fake_daemon_without_the_key() -> None:
    """A process that grabbed the port but lacks the key gets the HELLO and nothing else."""
    received = bytearray()
    closed = asyncio.Event()

    async def fake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = FrameSplitter()
        while data := await reader.read(65536):
            received.extend(data)
            for payload in splitter.feed(data):
                request_id, msg_type = decode_header(payload, frozenset({2}))
                if msg_type is MsgType.HELLO:
                    # it cannot compute sp without the key: answer with a guess
                    challenge = Challenge(os.urandom(32), os.urandom(32))
                    writer.write(encode(challenge, request_id, 2))
                    await writer.drain()
        closed.set()
        writer.close()

    server = await asyncio.start_server(fake, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DaemonAuthError, match="could not prove the pre-shared key"):
            await asyncio.to_thread(IngestClient.tcp, "127.0.0.1", port, PSK, timeout=10)
        await asyncio.wait_for(closed.wait(), 10)
    finally:
        server.close()
    frames = FrameSplitter().feed(bytes(received))
    assert [type(decode(p, versions=frozenset({2}))[1]) for p in frames] == [Hello]
    assert len(received) == 4 + len(frames[0])
    found = PASSWORD.encode() in received
    assert not found


async def test_unix_client_change_check_and_reason(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start()
    handler.ack = Ack(AckStatus.BUSY, "queue full")

    def talk() -> tuple[Any, Any]:
        with IngestClient.unix(server.unix_path, timeout=10) as client:  # type: ignore[arg-type]
            ack = client.change(
                account="a", password=Secret("pw1"), changed_at_ms=1, event_id=bytes(16)
            )
            verdict = client.check(account="a", password=Secret("pw1"))
            return ack, verdict

    ack, verdict = await asyncio.to_thread(talk)
    assert (ack.status, ack.reason) == (AckCode.BUSY, "queue full")
    assert verdict.status == VerdictCode.ACCEPT


async def test_client_pipelines_many_changes(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start(unix=True, tcp=True)
    host, port = server.tcp_address  # type: ignore[misc]
    messages = [
        change_message(
            account=f"user{i}",
            password=Secret(f"pw-{i}"),
            changed_at_ms=i,
            event_id=i.to_bytes(16, "big"),
        )
        for i in range(300)
    ]

    def run(client: IngestClient) -> list[Any]:
        with client:
            return client.pipeline_changes(messages, window=64)

    acks = await asyncio.to_thread(lambda: run(IngestClient.tcp(host, port, PSK, timeout=10)))
    assert [a.status for a in acks] == [AckCode.STORED] * 300
    acks = await asyncio.to_thread(lambda: run(IngestClient.unix(server.unix_path, timeout=10)))  # type: ignore[arg-type]
    assert len(acks) == 300
    assert sorted(c.event_id for c, _ in handler.changes) == sorted(
        m.event_id for m in messages * 2
    )


async def test_client_raises_daemon_error_on_protocol_error(harness: Harness) -> None:
    server = await harness.start()

    def talk() -> None:
        with IngestClient.unix(server.unix_path, timeout=10) as client:  # type: ignore[arg-type]
            client.change(
                account="x" * 2000, password=Secret("pw"), changed_at_ms=1, event_id=bytes(16)
            )

    with pytest.raises(DaemonError, match="longer than 1024 bytes"):
        await asyncio.to_thread(talk)


async def test_client_deadline(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start()
    handler.gate = asyncio.Event()

    def talk() -> None:
        with IngestClient.unix(server.unix_path, timeout=0.2) as client:  # type: ignore[arg-type]
            client.check(account="a", password=Secret("pw"))

    with pytest.raises(IngestTimeout):
        await asyncio.to_thread(talk)


def test_client_wants_a_secret() -> None:
    with pytest.raises(TypeError, match="Secret"):
        change_message(account="a", password="plain", changed_at_ms=1, event_id=bytes(16))  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "192.168.1.1", "example.com"])
def test_non_loopback_tcp_bind_refused(handler: StubHandler, host: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|not an IP address"):
        IngestServer(handler, tcp=(host, 17635), psk=PSK)


def test_tcp_without_psk_refused(handler: StubHandler) -> None:
    with pytest.raises(ValueError, match="32-byte PSK"):
        IngestServer(handler, tcp=("127.0.0.1", 0), psk=None)
