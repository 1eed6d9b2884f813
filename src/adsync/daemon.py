"""The daemon: ingest → encrypted queue → dispatcher → backends, and its life cycle.

A composition root: it builds the parts, starts them in order, stops them in
reverse, and implements ``IngestHandler`` (CHANGE → queue, CHECK → precheck).
The parts own the rest: ``Dispatcher`` its lanes, ``observe.status`` what
``/status``, ``/healthz`` and ``/metrics`` show, ``adsync.reloader`` SIGHUP.

Start order makes every ACK honest: the queue opens (and refuses a wrong key)
before any socket listens. A backend whose plugin fails to start does not stop
the others: it is logged (``backend_start_failed``), shown by ``adsync status``
and ``/healthz``, its changes wait in the queue, and a reload starts it again.
Stop order loses nothing: stop taking changes, let in-flight deliveries finish
within the grace, then close the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import grp
import os
import signal
from collections import Counter
from collections.abc import Sequence
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
from adsync.observe.http import ObserveServer
from adsync.observe.status import StatusView
from adsync.observe.watched_queue import WatchedQueue
from adsync.plugin import Backend, Candidate, Change, CheckResult
from adsync.precheck import precheck
from adsync.queue.keys import KeyProvider, key_provider_from_config
from adsync.queue.store import AppendStatus
from adsync.reload import pid_file_for, remove_pid_file, write_pid_file
from adsync.reloader import BackendStartError, Reloader, start_backend

log = structlog.get_logger("adsync.daemon")


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

    def __init__(
        self,
        config: Config,
        keys: KeyProvider | None = None,
        *,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._keys = keys or key_provider_from_config(config.keys)
        self.backends: dict[str, Backend[Any]] = {}  # the started ones
        self.queue: WatchedQueue | None = None
        self.dispatcher: Dispatcher | None = None
        self.server: IngestServer | None = None
        self.observe: ObserveServer | None = None
        self.view = StatusView(
            config=lambda: self.config,
            lanes=lambda: self.dispatcher.lane_states() if self.dispatcher else {},
            ingest=lambda: self.server.counters if self.server is not None else None,
            config_path=config_path,
        )
        self.metrics = self.view.metrics
        self._clock = SystemClock()
        self._pid_file: Path | None = None
        self._reloader = Reloader(self)
        self._reloads: list[asyncio.Task[bool]] = []
        self._stopping = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        config = self.config
        queue = await WatchedQueue.open(
            config.queue.path,
            self._keys,
            list(config.backends),
            max_pending=config.queue.max_pending,
            clock=self._clock,
        )
        assert isinstance(queue, WatchedQueue)
        self.queue = queue
        queue.path = Path(config.queue.path)
        queue.on_record = self.view.on_record
        self.view.watch(queue)
        self._pid_file = pid_file_for(Path(config.queue.path))
        write_pid_file(self._pid_file)
        await self._start_backends()
        lanes = {name: (b, b.config) for name, b in self.backends.items()}
        self.dispatcher = Dispatcher(self.queue, lanes, self._clock)
        await self.dispatcher.start()
        self.server = self._make_server()
        await self.server.start()
        listen = config.metrics.listen_address
        if listen is not None:
            view = self.view
            self.observe = ObserveServer(
                *listen, metrics=view.render_metrics, health=view.health, status=view.status
            )
            await self.observe.start()
        log.info(
            "daemon_ready",
            backends=sorted(self.backends),
            not_started=sorted(self.view.not_started),
            unix_socket=str(config.ingest.unix_socket) if config.ingest.unix_socket else None,
            tcp=config.ingest.tcp,
            metrics=str(config.metrics.listen) if config.metrics.listen else None,
        )

    async def _start_backends(self) -> None:
        """Start every plugin; one that fails is reported and the others run (see above)."""
        for name, backend_config in self.config.backends.items():
            try:
                self.backends[name] = await start_backend(name, backend_config)
            except BackendStartError as exc:
                log.error(
                    "backend_start_failed",
                    backend=name,
                    error=str(exc),
                    hint="its changes stay queued; fix the cause, then `adsync reload`",
                )
                self.view.backend_not_started(name, exc.reason)

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

    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> list[Ack]:
        if self._stopping or self.queue is None:
            self.metrics.on_change(peer.transport, "busy", len(changes))
            return [_SHUTTING_DOWN] * len(changes)
        results = await self.queue.append_many(changes)
        for status, count in Counter(r.status for r in results).items():
            self.metrics.on_change(peer.transport, status.value, count)
        return [
            _STORED if r.status is not AppendStatus.BUSY else Ack(AckStatus.BUSY, r.reason)
            for r in results
        ]

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        # One read of each: a reload swaps config and backends together, between awaits.
        pre, backends, down = self.config.precheck, self.backends, self.view.not_started
        asked = [backends[n] for n in pre.backends if n in backends and backends[n].offers_check]
        result = await precheck(
            candidate,
            asked,
            within=pre.timeout,
            on_undecided=pre.on_undecided,
            unanswered=[n for n in pre.backends if n in down],  # did not start: no answer
        )
        verdict = result.verdict.name.lower()
        self.metrics.on_check(verdict)
        log.info("check", verdict=verdict, peer=peer.description)
        return result

    # --- reload and stop ----------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: reload in a task (reloads run one at a time, in order)."""
        task = asyncio.ensure_future(self.reload())
        self._reloads.append(task)
        task.add_done_callback(self._reloads.remove)

    async def reload(self) -> bool:
        """Re-read the config file; True when the new config took effect."""
        return await self._reloader.reload()

    async def stop(self) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = self.view.stopping = True
        log.info("daemon_stopping")
        await self._reloader.close()  # a reload in progress finishes first
        if self.server is not None:
            # New CHANGEs get ACK busy from now on; appends already waiting commit and ACK.
            await self.server.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop(self.config.dispatch.shutdown_grace)
        if self.observe is not None:
            await self.observe.stop()
        if self.queue is not None:
            await self.queue.close()
        for backend in self.backends.values():
            with contextlib.suppress(Exception):
                await backend.close()
        if self._pid_file is not None:
            remove_pid_file(self._pid_file)
        log.info("daemon_stopped")
        self._stopped.set()


_STORED = Ack(AckStatus.STORED)
_SHUTTING_DOWN = Ack(AckStatus.BUSY, "daemon is shutting down")


async def serve(config: Config, config_path: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully; SIGHUP reloads ``config_path``."""
    daemon = Daemon(config, config_path=config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    try:
        await daemon.start()
        # What start-up loaded (modules, config, plugins) lives as long as the process:
        # moved out of the collector's sight, it is not traversed again at every full
        # collection during a burst.
        gc.collect()
        gc.freeze()
        await stop.wait()
    finally:
        await daemon.stop()


def run(config: Config, config_path: Path | None = None) -> None:
    os.umask(0o077)
    Path(config.queue.path).parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(config, config_path))
