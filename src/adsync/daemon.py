"""The daemon: ingest → encrypted queue → dispatcher → backends, and its life cycle.

Start order makes every ACK honest: the queue opens (and refuses a wrong key)
before any socket listens. Stop order loses nothing: stop taking changes, let
in-flight deliveries finish within the grace, then close the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import signal
from pathlib import Path
from typing import Any

import structlog

from adsync.clock import SystemClock
from adsync.config import Config
from adsync.dispatch.dispatcher import Dispatcher
from adsync.ingest.codec import Limits
from adsync.ingest.handler import Ack, AckStatus, Peer
from adsync.ingest.psk import load_or_create_psk
from adsync.ingest.server import IngestServer
from adsync.plugin import Backend, Candidate, Change, CheckResult, load_backend_class
from adsync.precheck import precheck
from adsync.queue.keys import KeyProvider, key_provider_from_config
from adsync.queue.store import AppendStatus, Queue

log = structlog.get_logger("adsync.daemon")


def build_backends(config: Config) -> dict[str, Backend[Any]]:
    backends: dict[str, Backend[Any]] = {}
    for name, backend_config in config.backends.items():
        cls = load_backend_class(backend_config.type)
        backends[name] = cls(name, backend_config)
    return backends


def ingest_limits(config: Config) -> Limits:
    ingest = config.ingest
    return Limits(
        max_frame=ingest.max_frame,
        max_field=ingest.max_field,
        max_password=ingest.max_password,
        max_connections=ingest.max_connections,
        frame_timeout=ingest.frame_timeout,
        idle_timeout=ingest.idle_timeout,
        handshake_timeout=ingest.handshake_timeout,
    )


class Daemon:
    """Implements ``IngestHandler``: CHANGE → queue, CHECK → precheck."""

    def __init__(self, config: Config, keys: KeyProvider | None = None) -> None:
        self.config = config
        self._keys = keys or key_provider_from_config(config.keys)
        self.backends: dict[str, Backend[Any]] = {}
        self.queue: Queue | None = None
        self.dispatcher: Dispatcher | None = None
        self.server: IngestServer | None = None
        self._stopping = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        config = self.config
        self.backends = build_backends(config)
        clock = SystemClock()
        self.queue = await Queue.open(
            config.queue.path,
            self._keys,
            list(self.backends),
            max_pending=config.queue.max_pending,
            clock=clock,
        )
        for backend in self.backends.values():
            await backend.start()
        lanes = {name: (b, b.config) for name, b in self.backends.items()}
        self.dispatcher = Dispatcher(self.queue, lanes, clock)
        await self.dispatcher.start()
        self.server = self._make_server()
        await self.server.start()
        log.info(
            "daemon_ready",
            backends=sorted(self.backends),
            unix_socket=str(config.ingest.unix_socket) if config.ingest.unix_socket else None,
            tcp=config.ingest.tcp,
        )

    def _make_server(self) -> IngestServer:
        ingest = self.config.ingest
        psk = load_or_create_psk(ingest.psk_file) if ingest.tcp else None
        group = grp.getgrnam(ingest.socket_group).gr_gid if ingest.socket_group else None
        return IngestServer(
            self,
            ingest_limits(self.config),
            unix_path=ingest.unix_socket,
            allowed_uids=set(ingest.allowed_uids),
            socket_group=group,
            tcp=ingest.tcp_address,
            psk=psk,
        )

    # --- IngestHandler ----------------------------------------------------------------

    async def change(self, change: Change, peer: Peer) -> Ack:
        if self._stopping or self.queue is None:
            return Ack(AckStatus.BUSY, "daemon is shutting down")
        result = await self.queue.append(change)
        if result.status is AppendStatus.BUSY:
            return Ack(AckStatus.BUSY, result.reason)
        return Ack(AckStatus.STORED)

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        pre = self.config.precheck
        asked = [self.backends[n] for n in pre.backends if self.backends[n].offers_check]
        result = await precheck(
            candidate, asked, within=pre.timeout, on_undecided=pre.on_undecided
        )
        log.info("check", verdict=result.verdict.name.lower(), peer=peer.description)
        return result

    # --- life cycle -------------------------------------------------------------------

    async def stop(self) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        log.info("daemon_stopping")
        if self.server is not None:
            # New CHANGEs get ACK busy from now on; appends already waiting commit and ACK.
            await self.server.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop(self.config.dispatch.shutdown_grace)
        if self.queue is not None:
            await self.queue.close()
        for backend in self.backends.values():
            with contextlib.suppress(Exception):
                await backend.close()
        log.info("daemon_stopped")
        self._stopped.set()


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.start()
        await stop.wait()
    finally:
        await daemon.stop()


def run(config: Config) -> None:
    os.umask(0o077)
    Path(config.queue.path).parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(config))
