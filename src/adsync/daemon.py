"""The daemon: ingest → encrypted queue → dispatcher → backends, and its life cycle.

Start order makes every ACK honest: the queue opens (and refuses a wrong key)
before any socket listens. Stop order loses nothing: stop taking changes, let
in-flight deliveries finish within the grace, then close the queue.

SIGHUP reloads the config file (see ``adsync.reload`` for what can change live):
a valid file takes effect without closing a connection or dropping a change, an
invalid one is refused and logged, and the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import grp
import logging
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from adsync.clock import SystemClock
from adsync.config import Config, ConfigError, load_config
from adsync.dispatch.dispatcher import Dispatcher
from adsync.dispatch.lane import Lane
from adsync.ingest.codec import Limits
from adsync.ingest.handler import Ack, AckStatus, Peer
from adsync.ingest.psk import load_or_create_psk
from adsync.ingest.server import IngestServer
from adsync.observe.health import HealthReport, WriteProbe, evaluate
from adsync.observe.http import ObserveServer
from adsync.observe.metrics import DepthCache, Metrics
from adsync.plugin import Backend, Candidate, Change, CheckResult, load_backend_class
from adsync.precheck import precheck
from adsync.queue.keys import KeyProvider, key_provider_from_config
from adsync.queue.models import AppendStatus, QueueDepth
from adsync.queue.store import Queue
from adsync.reload import ReloadPlan, pid_file_for, plan_reload, remove_pid_file, write_pid_file

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
        self.backends: dict[str, Backend[Any]] = {}
        self.queue: Queue | None = None
        self.dispatcher: Dispatcher | None = None
        self.server: IngestServer | None = None
        self.observe: ObserveServer | None = None
        self.metrics = Metrics(
            depth=self._depth_cache_value,
            ingest=lambda: self.server.counters if self.server is not None else None,
            lanes=self._lane_states,
        )
        self._clock = SystemClock()
        self._depth = DepthCache(max_age=1.0)
        self._depth_lock = asyncio.Lock()
        self._probe: WriteProbe | None = None
        self._pid_file: Path | None = None
        self._last_errors: dict[str, dict[str, Any]] = {}
        self._reload_lock = asyncio.Lock()
        self._reloads: list[asyncio.Task[bool]] = []
        self.reload_count = 0
        self.last_reload: dict[str, Any] | None = None
        self.restart_needed: tuple[str, ...] = ()
        self.started_at = time.time()
        self._stopping = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        config = self.config
        self.backends = build_backends(config)
        queue = await Queue.open(
            config.queue.path,
            self._keys,
            list(self.backends),
            max_pending=config.queue.max_pending,
            clock=self._clock,
            on_record=self._on_record,
        )
        self.queue = queue
        self._probe = WriteProbe(queue.write_probe)
        self._pid_file = pid_file_for(Path(config.queue.path))
        write_pid_file(self._pid_file)
        for backend in self.backends.values():
            await backend.start()
        lanes = {name: (b, b.config) for name, b in self.backends.items()}
        self.dispatcher = Dispatcher(self.queue, lanes, self._clock)
        await self.dispatcher.start()
        self.server = self._make_server()
        await self.server.start()
        listen = config.metrics.listen_address
        if listen is not None:
            self.observe = ObserveServer(
                listen[0],
                listen[1],
                metrics=self.render_metrics,
                health=self.health,
                status=self.status,
            )
            await self.observe.start()
        log.info(
            "daemon_ready",
            backends=sorted(self.backends),
            unix_socket=str(config.ingest.unix_socket) if config.ingest.unix_socket else None,
            tcp=config.ingest.tcp,
            metrics=str(config.metrics.listen) if config.metrics.listen else None,
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
        pre, backends = self.config.precheck, self.backends
        asked = [backends[n] for n in pre.backends if backends[n].offers_check]
        result = await precheck(candidate, asked, within=pre.timeout, on_undecided=pre.on_undecided)
        verdict = result.verdict.name.lower()
        self.metrics.on_check(verdict)
        log.info("check", verdict=verdict, peer=peer.description)
        return result

    # --- observation ------------------------------------------------------------------

    def _on_record(
        self, backend: str, outcome: str, state: str, latency: float | None, error: str
    ) -> None:
        self.metrics.on_delivery(backend, outcome, latency)
        if outcome != "delivered":
            self._last_errors[backend] = {
                "outcome": outcome,
                "error": error,
                "next_state": state,
                "at": time.time(),
            }

    def _lane_states(self) -> dict[str, tuple[bool, int]]:
        if self.dispatcher is None:
            return {}
        return {
            name: (_lane_running(lane), lane.in_flight)
            for name, lane in self.dispatcher.lanes.items()
        }

    def _depth_cache_value(self) -> QueueDepth | None:
        return self._depth.get()

    async def depth(self, *, fresh: bool = False) -> QueueDepth | None:
        """Queue depth, at most ~1s old unless ``fresh`` (concurrent scrapes share a query)."""
        if self.queue is None:
            return None
        async with self._depth_lock:
            if fresh or not self._depth.fresh():
                try:
                    self._depth.put(await self.queue.depth())
                except Exception as exc:  # a closed or broken queue: report, do not crash
                    log.warning("queue_depth_failed", error=type(exc).__name__)
            return self._depth.get()

    async def render_metrics(self) -> bytes:
        await self.depth()
        return self.metrics.render()

    async def health(self) -> HealthReport:
        problem = "the queue is not open"
        if self._probe is not None and not self._stopping:
            problem_or_none = await self._probe.check()
            problem = problem_or_none if problem_or_none is not None else ""
        lanes = {name: running for name, (running, _n) in self._lane_states().items()}
        return evaluate(queue_problem=problem or None, lanes=lanes, stopping=self._stopping)

    async def status(self) -> dict[str, Any]:
        """Everything ``adsync status`` shows; never an account or a password."""
        depth = await self.depth(fresh=True)  # drain and tests poll it: never stale
        lanes = self._lane_states()
        names = sorted(set(self.config.backends) | set(depth.counts if depth else ()))
        backends = []
        for name in names:
            cfg = self.config.backends.get(name)
            running, in_flight = lanes.get(name, (False, 0))
            counts = dict(depth.counts.get(name, {})) if depth else {}
            backends.append(
                {
                    "name": name,
                    "type": cfg.type if cfg is not None else None,
                    "configured": cfg is not None,
                    "lane": ("running" if running else "stopped") if name in lanes else "none",
                    "in_flight": in_flight,
                    "concurrency": cfg.concurrency if cfg is not None else None,
                    "counts": counts,
                    "pending": counts.get("pending", 0) + counts.get("in_flight", 0),
                    "oldest_pending_age": depth.oldest_age(name) if depth else None,
                    "last_error": self._last_errors.get(name),
                }
            )
        counters = self.server.counters if self.server is not None else None
        return {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "stopping": self._stopping,
            "config_path": str(self.config_path) if self.config_path else None,
            "reloads": self.reload_count,
            "last_reload": self.last_reload,
            "restart_needed": list(self.restart_needed),
            "queue": {
                "path": str(self.config.queue.path),
                "pending_deliveries": depth.unfinished if depth else None,
                "changes_holding_password": depth.changes_holding_password if depth else None,
            },
            "ingest": {
                "connections_open": counters.connections_open if counters else 0,
                "changes_received": counters.changes_received if counters else 0,
                "checks_received": counters.checks_received if counters else 0,
            },
            "backends": backends,
        }

    # --- reload -----------------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: reload in a task (reloads run one at a time, in order)."""
        task = asyncio.ensure_future(self.reload())
        self._reloads.append(task)
        task.add_done_callback(self._reloads.remove)

    async def reload(self) -> bool:
        """Re-read the config file; True when the new config took effect."""
        async with self._reload_lock:
            if self._stopping:
                return self._reload_refused("the daemon is stopping")
            if self.config_path is None:
                return self._reload_refused("the daemon was started without a config file")
            if self.dispatcher is None:
                return self._reload_refused("the daemon is still starting")
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                return self._reload_refused(str(exc))
            plan = plan_reload(self.config, new)
            try:
                fresh = await self._start_backends(plan)
            except _BackendStartError as exc:
                return self._reload_refused(str(exc))
            await self._apply(plan, fresh)
            return True

    def _reload_refused(self, error: str) -> bool:
        log.error("config_reload_refused", error=error, kept="the running config")
        self.reload_count += 1
        self.last_reload = {"at": time.time(), "ok": False, "error": error}
        self.metrics.on_reload(False)
        return False

    async def _start_backends(self, plan: ReloadPlan) -> dict[str, Backend[Any]]:
        fresh: dict[str, Backend[Any]] = {}
        for name in (*plan.added, *plan.changed):
            cfg = plan.config.backends[name]
            try:
                backend = load_backend_class(cfg.type)(name, cfg)
                await backend.start()
            except Exception as exc:
                for started in fresh.values():
                    with contextlib.suppress(Exception):
                        await started.close()
                raise _BackendStartError(
                    f"backend {name}: cannot start ({type(exc).__name__})"
                ) from None
            fresh[name] = backend
        return fresh

    async def _apply(self, plan: ReloadPlan, fresh: dict[str, Backend[Any]]) -> None:
        assert self.queue is not None and self.dispatcher is not None
        old_config, old_backends = self.config, self.backends
        new = plan.config
        # From here on, new changes fan out to the new backend set...
        self.queue.set_backends(
            list(new.backends), {n: c.retry.expire_after for n, c in new.backends.items()}
        )
        # ...and checks ask the new backends: both swapped with no await in between.
        self.backends = {
            **{n: b for n, b in old_backends.items() if n in new.backends and n not in fresh},
            **fresh,
        }
        self.config = new
        retiring = (*plan.removed, *plan.changed)
        await asyncio.gather(*(self._retire_lane(n, new.dispatch.shutdown_grace) for n in retiring))
        for name in (*plan.changed, *plan.added):
            self._add_lane(name, self.backends[name])
        if old_config.logging != new.logging:
            _configure_logging(new.logging.level, new.logging.format)
        if any(n in old_config.precheck.backends for n in retiring):
            await asyncio.sleep(old_config.precheck.timeout)  # checks in progress finish
        for name in retiring:
            with contextlib.suppress(Exception):
                await old_backends[name].close()
        kept = {}
        if plan.removed:
            depth = await self.queue.depth()
            kept = {n: depth.counts.get(n, {}).get("pending", 0) for n in plan.removed}
        self.restart_needed = plan.restart_needed
        self.reload_count += 1
        self.last_reload = {
            "at": time.time(),
            "ok": True,
            "error": None,
            "added": list(plan.added),
            "removed": list(plan.removed),
            "changed": list(plan.changed),
            "restart_needed": list(plan.restart_needed),
            "kept_pending_of_removed": kept,
        }
        self.metrics.on_reload(True)
        log.info(
            "config_reloaded",
            added=list(plan.added),
            removed=list(plan.removed),
            changed=list(plan.changed),
        )
        for name, n in kept.items():
            log.warning(
                "backend_removed_rows_kept",
                backend=name,
                pending=n,
                hint="kept in the queue; `adsync queue purge` removes them",
            )
        if plan.restart_needed:
            log.warning("config_needs_restart", keys=list(plan.restart_needed))

    async def _retire_lane(self, name: str, grace: float) -> None:
        """Stop claiming; let running deliveries finish within ``grace``; release the rest."""
        assert self.dispatcher is not None
        lane = self.dispatcher.lanes.get(name)
        if lane is None:
            return
        await lane.stop_claiming()
        running = lane.running_deliveries()
        if running:
            await asyncio.wait(running, timeout=grace)
        if lane.in_flight:
            log.warning("reload_grace_over", backend=name, released=lane.in_flight)
            await lane.abandon()
        self.dispatcher.lanes.pop(name, None)

    def _add_lane(self, name: str, backend: Backend[Any]) -> None:
        assert self.queue is not None and self.dispatcher is not None
        lane = Lane(
            self.queue,
            name,
            backend,
            backend.config,
            self._clock,
            random=random.SystemRandom().random,
            idle_poll=5.0,
        )
        self.dispatcher.lanes[name] = lane
        lane.start()
        lane.wake()

    # --- life cycle -------------------------------------------------------------------

    async def stop(self) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        log.info("daemon_stopping")
        async with self._reload_lock:  # a reload in progress finishes first
            pass
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


class _BackendStartError(Exception):
    pass


def _lane_running(lane: Lane) -> bool:
    task = lane._task  # the lane's loop; done means it stopped or died
    return task is not None and not task.done()


def _configure_logging(level: str, fmt: str) -> None:
    from adsync.observe.logs import configure_logging

    configure_logging(level, fmt)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)


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
