"""Protocol version 2 on TCP: sealed frames after the handshake, v1 refused by default.

Real server on 127.0.0.1, raw sockets for what a well-behaved client never sends.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from adsync.ingest import handshake, sealing
from adsync.ingest.client import IngestClient
from adsync.ingest.codec import (
    AckReply,
    Auth,
    AuthOk,
    Challenge,
    ErrorReply,
    FrameSplitter,
    Hello,
    Message,
    decode,
    encode,
)
from adsync.ingest.wire import AckCode
from adsync.secret import Secret

from .conftest import HANG_GUARD, PSK, Harness, StubHandler, change_fields, raw_frame

PW = "Seal-Pässwörd€-42"
V2 = frozenset({2})


class SealedRaw:
    """A raw v2 peer: real handshake, then sealed frames it may also tamper with."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.clear = FrameSplitter()
        self.opened: sealing.SealedSplitter | None = None
        self.sealer: sealing.Sealer | None = None
        self.received = bytearray()
        self.pending: list[bytes] = []

    async def _read(self) -> bytes:
        data = await asyncio.wait_for(self.reader.read(65536), HANG_GUARD)
        self.received += data
        return data

    async def handshake(self) -> None:
        cn = handshake.new_nonce()
        self.writer.write(encode(Hello(cn, "sealed-test"), 1, 2))
        challenge = await self._clear_reply()
        assert isinstance(challenge, Challenge)
        sn = challenge.daemon_nonce
        assert handshake.verify_daemon_proof(PSK, cn, sn, challenge.daemon_proof, 2)
        self.writer.write(encode(Auth(handshake.client_proof(PSK, cn, sn, 2)), 2, 2))
        assert await self._clear_reply() == AuthOk()
        keys = sealing.session_keys(PSK, cn, sn)
        self.sealer = sealing.Sealer(keys.client_to_daemon)
        self.opened = sealing.SealedSplitter(keys.daemon_to_client)

    async def _clear_reply(self) -> Message:
        while True:
            payloads = self.clear.feed(await self._read())
            if payloads:
                assert len(payloads) == 1
                return decode(payloads[0], versions=V2)[1]

    def sealed(self, frame: bytes) -> bytes:
        assert self.sealer is not None
        return self.sealer.seal(frame)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> tuple[int, Message] | None:
        assert self.opened is not None
        while not self.pending:
            data = await self._read()
            if not data:
                return None
            self.pending += self.opened.feed(data)
        return decode(self.pending.pop(0), versions=V2)

    async def bytes_until_eof(self) -> bytes:
        start = len(self.received)
        with contextlib.suppress(ConnectionError):
            while await self._read():
                pass
        return bytes(self.received[start:])


async def sealed_peer(harness: Harness, **kwargs: Any) -> tuple[Any, SealedRaw]:
    server = await harness.start(unix=False, tcp=True, **kwargs)
    assert server.tcp_address is not None
    reader, writer = await asyncio.open_connection(*server.tcp_address)
    raw = SealedRaw(reader, writer)
    await raw.handshake()
    return server, raw


def change_frame(request_id: int, password: str = PW) -> bytes:
    return raw_frame(0x20, change_fields(password.encode()), request_id=request_id, version=2)


async def test_sealed_change_is_stored_and_acked_sealed(
    harness: Harness, handler: StubHandler
) -> None:
    server, raw = await sealed_peer(harness)
    await raw.send(raw.sealed(change_frame(5)) + raw.sealed(change_frame(6)))
    assert await raw.reply() == (5, AckReply(AckCode.STORED))
    assert await raw.reply() == (6, AckReply(AckCode.STORED))
    assert [c.password.reveal() for c, _ in handler.changes] == [PW, PW]
    assert b"ADSY" not in raw.received[-80:]  # the ACKs were sealed, not in clear
    raw.writer.close()
    assert server.counters.seal_failures == 0


async def test_tampered_frame_closes_without_a_reply(
    harness: Harness, handler: StubHandler, captured_logs: list[dict[str, Any]]
) -> None:
    server, raw = await sealed_peer(harness)
    frame = bytearray(raw.sealed(change_frame(5)))
    frame[30] ^= 0x04  # inside the ciphertext
    await raw.send(bytes(frame))
    assert await raw.bytes_until_eof() == b""  # closed, nothing answered (not even ERROR)
    assert handler.changes == []
    assert server.counters.seal_failures == 1
    assert [e["event"] for e in captured_logs if e["event"] == "ingest_seal_failed"] == [
        "ingest_seal_failed"
    ]


async def test_replayed_frame_closes_after_answering_the_original(
    harness: Harness, handler: StubHandler
) -> None:
    server, raw = await sealed_peer(harness)
    frame = raw.sealed(change_frame(5))
    await raw.send(frame)
    assert await raw.reply() == (5, AckReply(AckCode.STORED))
    await raw.send(frame)  # the same bytes again
    assert await raw.bytes_until_eof() == b""
    assert len(handler.changes) == 1
    assert server.counters.seal_failures == 1


async def test_reordered_frames_close_the_connection(
    harness: Harness, handler: StubHandler
) -> None:
    server, raw = await sealed_peer(harness)
    first, second = raw.sealed(change_frame(5)), raw.sealed(change_frame(6))
    await raw.send(second + first)
    assert await raw.bytes_until_eof() == b""
    assert handler.changes == []
    assert server.counters.seal_failures == 1


async def test_a_clear_frame_after_the_handshake_is_refused(
    harness: Harness, handler: StubHandler
) -> None:
    server, raw = await sealed_peer(harness)
    await raw.send(change_frame(5))  # a well-formed frame, but not sealed
    assert await raw.bytes_until_eof() == b""
    assert handler.changes == []
    assert server.counters.seal_failures == 1


async def test_protocol_error_inside_a_sealed_frame_gets_a_sealed_error(
    harness: Harness, handler: StubHandler
) -> None:
    _server, raw = await sealed_peer(harness)
    bad = raw_frame(0x20, change_fields(PW.encode()), request_id=9, version=2, magic=b"XXXX")
    await raw.send(raw.sealed(bad))
    assert await raw.reply() == (0, ErrorReply("bad magic"))
    assert b"bad magic" not in raw.received  # sealed like every frame after AUTH_OK
    assert handler.changes == []


async def test_version_1_is_refused_by_default(
    harness: Harness, handler: StubHandler, captured_logs: list[dict[str, Any]]
) -> None:
    server = await harness.start(unix=False, tcp=True, allow_unsealed_v1=False)
    raw = await harness.tcp(server, authed=False)
    await raw.send(encode(Hello(handshake.new_nonce(), "old-filter"), 1))
    assert await raw.replies_until_eof() == [
        (1, ErrorReply("unsealed version 1 refused on TCP (ingest.allow_unsealed_v1 is off)"))
    ]
    assert server.counters.unsealed_refused == 1
    assert [e["event"] for e in captured_logs if e["event"] == "ingest_unsealed_refused"] == [
        "ingest_unsealed_refused"
    ]
    # a v2 client on the same server is served
    host, port = server.tcp_address  # type: ignore[misc]
    ack = await asyncio.to_thread(_one_change, host, port)
    assert ack.status is AckCode.STORED
    assert len(handler.changes) == 1


async def test_version_1_is_served_with_the_setting(harness: Harness) -> None:
    server = await harness.start(unix=False, tcp=True, allow_unsealed_v1=True)
    raw = await harness.tcp(server, authed=False)
    assert await raw.handshake() == (2, AuthOk())
    await raw.send(raw_frame(0x20, change_fields(PW.encode()), request_id=3))
    assert await raw.reply() == (3, AckReply(AckCode.STORED))


async def test_frames_pipelined_before_auth_ok_are_refused(
    harness: Harness, handler: StubHandler
) -> None:
    server = await harness.start(unix=False, tcp=True)
    assert server.tcp_address is not None
    reader, writer = await asyncio.open_connection(*server.tcp_address)
    raw = SealedRaw(reader, writer)
    cn = handshake.new_nonce()
    writer.write(encode(Hello(cn, "eager"), 1, 2))
    challenge = await raw._clear_reply()
    assert isinstance(challenge, Challenge)
    auth = encode(Auth(handshake.client_proof(PSK, cn, challenge.daemon_nonce, 2)), 2, 2)
    writer.write(auth + change_frame(3))  # did not wait for AUTH_OK
    replies = [decode(p, versions=V2) for p in FrameSplitter().feed(await raw.bytes_until_eof())]
    assert replies == [(2, ErrorReply("frames sent before AUTH_OK"))]
    assert handler.changes == []


def _one_change(host: str, port: int) -> AckReply:
    with IngestClient.tcp(host, port, PSK, timeout=10) as client:
        assert client.version == 2
        return client.change(
            account="alice",
            password=Secret(PW),
            changed_at_ms=1700000000000,
            event_id=bytes(range(16)),
        )


async def test_python_client_traffic_shows_no_password_nor_psk(
    harness: Harness, handler: StubHandler
) -> None:
    """A recording TCP proxy between IngestClient.tcp and the daemon sees sealed bytes only."""
    server = await harness.start(unix=False, tcp=True)
    assert server.tcp_address is not None
    daemon_host, daemon_port = server.tcp_address
    seen = bytearray()

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            seen.extend(data)
            dst.write(data)
            await dst.drain()
        dst.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(daemon_host, daemon_port)
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        ack = await asyncio.to_thread(_one_change, "127.0.0.1", port)
    finally:
        proxy.close()
    assert ack.status is AckCode.STORED
    assert handler.changes[0][0].password.reveal() == PW
    assert len(seen) > 200
    found = [i for i, x in enumerate((PW.encode(), PW.encode("utf-16-le"), PSK)) if x in seen]
    assert found == []  # indexes only: a failure never prints the password or the key
    assert b"alice" not in seen
