"""Real ingest servers on real sockets (Unix in a temp dir, TCP on 127.0.0.1), stub handler."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog

from adsync.ingest import handshake
from adsync.ingest.codec import (
    Auth,
    AuthOk,
    Challenge,
    FrameSplitter,
    Hello,
    Limits,
    Message,
    decode,
    encode,
)
from adsync.ingest.handler import Ack, AckStatus, Peer
from adsync.ingest.server import IngestServer
from adsync.plugin import Candidate, Change, CheckResult

PSK = bytes(range(100, 132))
HANG_GUARD = 10.0  # only so a broken server cannot hang the suite; never asserted on


class StubHandler:
    """Records what it got; can be gated, made to fail, or told what to answer."""

    def __init__(self) -> None:
        self.changes: list[tuple[Change, Peer]] = []
        self.checks: list[tuple[Candidate, Peer]] = []
        self.batches: list[int] = []  # how many CHANGEs each handler call carried
        self.ack = Ack(AckStatus.STORED)
        self.result = CheckResult.accept()
        self.gate: asyncio.Event | None = None
        self.fail: BaseException | None = None
        self.running = 0
        self.max_running = 0

    async def _enter(self, n: int = 1) -> None:
        self.running += n  # requests inside the handler (a batch of CHANGEs counts each)
        self.max_running = max(self.max_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                raise self.fail
        finally:
            self.running -= n

    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> list[Ack]:
        await self._enter(len(changes))
        self.changes.extend((change, peer) for change in changes)
        self.batches.append(len(changes))
        return [self.ack] * len(changes)

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        await self._enter()
        self.checks.append((candidate, peer))
        return self.result


class Raw:
    """A raw async connection that sends arbitrary bytes and parses what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.splitter = FrameSplitter()
        self.pending: list[bytes] = []

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> tuple[int, Message] | None:
        """The next reply frame, or None at EOF."""
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), HANG_GUARD)
            if not data:
                return None
            self.pending += self.splitter.feed(data)
        return decode(self.pending.pop(0))

    async def replies_until_eof(self) -> list[tuple[int, Message]]:
        out = []
        while (item := await self.reply()) is not None:
            out.append(item)
        return out

    async def handshake(self, psk: bytes = PSK) -> tuple[int, Message] | None:
        cn = handshake.new_nonce()
        await self.send(encode(Hello(cn, "test"), 1))
        got = await self.reply()
        assert got is not None and isinstance(got[1], Challenge)
        sn = got[1].daemon_nonce
        assert handshake.verify_daemon_proof(PSK, cn, sn, got[1].daemon_proof)
        await self.send(encode(Auth(handshake.client_proof(psk, cn, sn)), 2))
        return await self.reply()

    def close(self) -> None:
        self.writer.transport.abort()


@dataclass
class Harness:
    handler: StubHandler
    tmp: Path
    servers: list[IngestServer] = field(default_factory=list)
    raws: list[Raw] = field(default_factory=list)

    async def start(
        self,
        limits: Limits | None = None,
        *,
        unix: bool = True,
        tcp: bool = False,
        **kwargs: Any,
    ) -> IngestServer:
        server = IngestServer(
            self.handler,
            limits or Limits(),
            unix_path=self.tmp / "filter.sock" if unix else None,
            allowed_uids=kwargs.pop("allowed_uids", {0}),
            tcp=("127.0.0.1", 0) if tcp else None,
            psk=PSK if tcp else None,
            # the raw-frame tests speak version 1 (clear) on TCP too; the sealed version 2
            # has its own tests (test_sealed.py), which also check the default refusal
            allow_unsealed_v1=kwargs.pop("allow_unsealed_v1", True),
            **kwargs,
        )
        await server.start()
        self.servers.append(server)
        return server

    async def unix(self, server: IngestServer) -> Raw:
        assert server.unix_path is not None
        reader, writer = await asyncio.open_unix_connection(str(server.unix_path))
        raw = Raw(reader, writer)
        self.raws.append(raw)
        return raw

    async def tcp(self, server: IngestServer, *, authed: bool = True) -> Raw:
        assert server.tcp_address is not None
        reader, writer = await asyncio.open_connection(*server.tcp_address)
        raw = Raw(reader, writer)
        self.raws.append(raw)
        if authed:
            got = await raw.handshake()
            assert got is not None and got == (2, AuthOk())
        return raw


@pytest.fixture
def handler() -> StubHandler:
    return StubHandler()


@pytest.fixture
async def harness(handler: StubHandler, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(handler, tmp_path)
    yield h
    for raw in h.raws:
        raw.close()
    if handler.gate is not None:
        handler.gate.set()
    for server in h.servers:
        await server.stop(grace=1.0)


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as logs:
        yield logs


def change_fields(
    password: bytes, *, account: bytes = b"alice", event_id: bytes | None = None
) -> list[tuple[int, bytes]]:
    return [
        (0x10, account),
        (0x12, password),
        (0x18, struct.pack(">Q", 1700000000000)),
        (0x19, event_id if event_id is not None else os.urandom(16)),
    ]


def raw_frame(
    msg_type: int,
    fields: list[tuple[int, bytes]],
    *,
    request_id: int = 0x0102030405060708,
    magic: bytes = b"ADSY",
    version: int = 1,
    flags: int = 0,
    tail: bytes = b"",
    length: int | None = None,
) -> bytes:
    """A whole frame built by hand, so it can be wrong on purpose."""
    body = b"".join(struct.pack(">BH", tag, len(v)) + v for tag, v in fields)
    payload = struct.pack(">4sBBHQ", magic, version, msg_type, flags, request_id) + body + tail
    return struct.pack(">I", len(payload) if length is None else length) + payload


@pytest.fixture
def build() -> Callable[..., bytes]:
    return raw_frame


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition (a hang guard, not a timing assertion)."""
    for _ in range(int(HANG_GUARD / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
def until() -> Callable[[Callable[[], bool]], Any]:
    return wait_until


def leak_count(haystacks: list[str], passwords: list[str]) -> int:
    """How many (line, password) pairs leak, in UTF-8 text or hex; never shows the values."""
    count = 0
    for line in haystacks:
        for pw in passwords:
            if pw in line or pw.encode().hex() in line:
                count += 1
    return count


@pytest.fixture
def leaks() -> Callable[[list[str], list[str]], int]:
    return leak_count
