"""The daemon: ingest → encrypted queue → dispatcher → backends, and its life cycle.

A composition root: it builds the parts, starts them in order and stops them in
reverse. The parts own the rest: ``adsync.intake`` answers the sources (CHANGE →
queue, CHECK → precheck), ``Dispatcher`` runs the lanes, ``observe.status`` is what
``/status``, ``/healthz`` and ``/metrics`` show, ``adsync.reloader`` applies SIGHUP.

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
from pathlib import Path
from typing import Any

import structlog

from adsync.clock import SystemClock
from adsync.config import Config
from adsync.dispatch.dispatcher import Dispatcher
from adsync.ingest.exclusion import ExcludingHandler
from adsync.ingest.psk import load_or_create_psk
from adsync.ingest.server import IngestServer
from adsync.intake import Intake
from adsync.observe.http import ObserveServer
from adsync.observe.status import StatusView
from adsync.plugin import Backend
from adsync.queue.keys import KeyProvider, key_provider_from_config
from adsync.queue.store import Queue
from adsync.reload import pid_file_for, remove_pid_file, write_pid_file
from adsync.reloader import Reloader, start_backends
from adsync.startup import ingest_listeners, listening

log = structlog.get_logger("adsync.daemon")


class Daemon:
    """Builds the parts, starts them in order and stops them in reverse."""

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
        self.queue: Queue | None = None
        self.dispatcher: Dispatcher | None = None
        self.server: IngestServer | None = None
        self.observe: ObserveServer | None = None
        self.view = StatusView(
            config=lambda: self.config,
            lanes=lambda: self.dispatcher.lane_states() if self.dispatcher else {},
            config_problems=lambda: self.dispatcher.config_problems() if self.dispatcher else {},
            ingest=lambda: self.server.counters if self.server is not None else None,
            config_path=config_path,
        )
        self._clock = SystemClock()
        self._pid_file: Path | None = None
        self.intake = Intake(self, self.view)
        self._reloader = Reloader(self)
        self._reloads: list[asyncio.Task[bool]] = []
        self._stopping = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        config = self.config
        queue = await Queue.open(
            config.queue.path,
            self._keys,
            list(config.backends),
            max_pending=config.queue.max_pending,
            clock=self._clock,
            on_record=self.view.on_record,
        )
        self.queue = queue
        self.view.watch(queue)
        self._pid_file = pid_file_for(Path(config.queue.path))
        write_pid_file(self._pid_file)
        self.backends = await start_backends(config.backends, self.view)
        lanes = {name: (b, b.config) for name, b in self.backends.items()}
        self.dispatcher = Dispatcher(self.queue, lanes, self._clock)
        await self.dispatcher.start()
        self.intake.open(queue)
        self.server = self._make_server()
        with listening(*ingest_listeners(config.ingest), socket_key="ingest.unix_socket"):
            await self.server.start()
        listen = config.metrics.listen_address
        if listen is not None:
            view = self.view
            self.observe = ObserveServer(
                *listen, metrics=view.render_metrics, health=view.health, status=view.status
            )
            with listening("metrics.listen", str(config.metrics.listen)):
                await self.observe.start()
        log.info(
            "daemon_ready",
            backends=sorted(self.backends),
            not_started=sorted(self.view.not_started),
            unix_socket=str(config.ingest.unix_socket) if config.ingest.unix_socket else None,
            tcp=config.ingest.tcp,
            metrics=str(config.metrics.listen) if config.metrics.listen else None,
        )

    def _make_server(self) -> IngestServer:
        ingest = self.config.ingest
        psk = load_or_create_psk(ingest.psk_file) if ingest.tcp else None
        group = grp.getgrnam(ingest.socket_group).gr_gid if ingest.socket_group else None
        return IngestServer(
            ExcludingHandler(self.intake, self.view.metrics.on_excluded),
            self.config.ingest.limits(),
            unix_path=ingest.unix_socket,
            allowed_uids=set(ingest.allowed_uids),
            socket_group=group,
            tcp=ingest.tcp_address,
            psk=psk,
        )

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
        self.intake.close()  # new CHANGEs: ACK busy; appends already waiting commit and ACK
        log.info("daemon_stopping")
        await self._reloader.close()  # a reload in progress finishes first
        if self.server is not None:
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
