"""The daemon as operators see it: ``/status``, ``/healthz`` and what ``/metrics`` reads.

Everything shown is read at request time from what the running parts already keep
(the queue's depth, the lanes' states, the ingest counters, the running config); the
view keeps only what no part keeps: each backend's last error, the backends whose
start failed, and the reload history. It never shows an account or a password.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from adsync.config import Config
from adsync.directory.audit import read_state as read_audit_state
from adsync.dispatch.lane import LaneState
from adsync.ingest.server import IngestCounters
from adsync.observe.health import HealthReport, WriteProbe, evaluate
from adsync.observe.metrics import DepthCache, Metrics, QueueDepth
from adsync.reload import ReloadPlan

log = structlog.get_logger("adsync.observe")


class ObservedQueue(Protocol):
    def depth(self) -> Awaitable[QueueDepth]: ...

    def write_probe(self) -> Awaitable[str | None]: ...


class StatusView:
    """Answers status, health and metrics scrapes; told of outcomes, start failures, reloads."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        lanes: Callable[[], Mapping[str, LaneState]],
        ingest: Callable[[], IngestCounters | None],
        config_path: Path | None = None,
        config_problems: Callable[[], Mapping[str, dict[str, Any]]] = dict,
    ) -> None:
        self._config = config
        self._lanes = lanes
        self._config_problems = config_problems
        self._ingest = ingest
        self._config_path = config_path
        self._queue: ObservedQueue | None = None
        self._probe: WriteProbe | None = None
        self._depth = DepthCache(max_age=1.0)
        self._depth_lock = asyncio.Lock()
        self._last_errors: dict[str, dict[str, Any]] = {}
        self._not_started: dict[str, str] = {}
        self.metrics = Metrics(depth=self._depth.get, ingest=ingest, lanes=self.lane_states)
        self.started_at = time.time()
        self.stopping = False
        self.reloads = 0
        self.last_reload: dict[str, Any] | None = None
        self.restart_needed: tuple[str, ...] = ()
        self.directory: Callable[[], Any] = lambda: None  # DirectoryStats when configured

    def watch(self, queue: ObservedQueue) -> None:
        """The open queue: its depth and write probe are read from now on."""
        self._queue = queue
        self._probe = WriteProbe(queue.write_probe)

    # --- what the view is told ---------------------------------------------------------

    def on_record(
        self, backend: str, outcome: str, state: str, latency: float | None, error: str
    ) -> None:
        """A finished delivery attempt (``error`` is already scrubbed)."""
        self.metrics.on_delivery(backend, outcome, latency)
        if outcome not in ("delivered", "skipped", "superseded"):  # decisions, not errors
            self._set_error(backend, outcome, error, state)

    def backend_not_started(self, backend: str, error: str) -> None:
        """``backend``'s plugin failed to start: no lane runs, its rows wait in the queue."""
        self._not_started[backend] = error
        self._set_error(backend, "start_failed", error, None)

    def forget_start_failure(self, backend: str) -> None:
        """``backend`` was removed or is started again by a reload."""
        if self._not_started.pop(backend, None) is not None:
            self._last_errors.pop(backend, None)

    @property
    def not_started(self) -> Mapping[str, str]:
        """Backends whose start failed, and why."""
        return dict(self._not_started)

    def reload_refused(self, error: str) -> None:
        self.reloads += 1
        self.last_reload = {"at": time.time(), "ok": False, "error": error}
        self.metrics.on_reload(False)

    def reload_applied(self, plan: ReloadPlan, kept: Mapping[str, int]) -> None:
        """``kept``: pending rows left in the queue by each removed backend."""
        self.reloads += 1
        self.restart_needed = plan.restart_needed
        self.last_reload = {
            "at": time.time(),
            "ok": True,
            "error": None,
            "added": list(plan.added),
            "removed": list(plan.removed),
            "changed": list(plan.changed),
            "restart_needed": list(plan.restart_needed),
            "kept_pending_of_removed": dict(kept),
        }
        self.metrics.on_reload(True)

    def _set_error(self, backend: str, outcome: str, error: str, state: str | None) -> None:
        self._last_errors[backend] = {
            "outcome": outcome,
            "error": error,
            "next_state": state,
            "at": time.time(),
        }

    # --- what the view answers -------------------------------------------------------------

    def lane_states(self) -> dict[str, LaneState]:
        """Every configured backend's lane; a backend that did not start shows a stopped one."""
        states = {name: LaneState(False, 0) for name in self._not_started}
        states.update(self._lanes())
        return states

    async def depth(self, *, fresh: bool = False) -> QueueDepth | None:
        """Queue depth, at most ~1s old unless ``fresh`` (concurrent scrapes share a query)."""
        if self._queue is None:
            return None
        async with self._depth_lock:
            if fresh or not self._depth.fresh():
                try:
                    self._depth.put(await self._queue.depth())
                except Exception as exc:  # a closed or broken queue: report, do not crash
                    log.warning("queue_depth_failed", error=type(exc).__name__)
            return self._depth.get()

    async def render_metrics(self) -> bytes:
        await self.depth()
        return self.metrics.render()

    async def health(self) -> HealthReport:
        problem: str | None = "the queue is not open"
        if self._probe is not None and not self.stopping:
            problem = await self._probe.check()
        lanes = {name: state.running for name, state in self.lane_states().items()}
        return evaluate(
            queue_problem=problem or None,
            lanes=lanes,
            stopping=self.stopping,
            not_started=self._not_started,
        )

    async def status(self) -> dict[str, Any]:
        """Everything ``adsync status`` shows; never an account or a password."""
        depth = await self.depth(fresh=True)  # drain and tests poll it: never stale
        config = self._config()
        counters = self._ingest()
        return {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "stopping": self.stopping,
            "config_path": str(self._config_path) if self._config_path else None,
            "reloads": self.reloads,
            "last_reload": self.last_reload,
            "restart_needed": list(self.restart_needed),
            "queue": {
                "path": str(config.queue.path),
                "pending_deliveries": depth.unfinished if depth else None,
                "changes_holding_password": depth.changes_holding_password if depth else None,
            },
            "ingest": {
                "connections_open": counters.connections_open if counters else 0,
                "changes_received": counters.changes_received if counters else 0,
                "checks_received": counters.checks_received if counters else 0,
            },
            "backends": self._backends(config, depth),
            "directory": self._directory(config),
            "audit": read_audit_state(Path(config.queue.path)),
        }

    def _directory(self, config: Config) -> dict[str, Any] | None:
        stats = self.directory()
        if config.directory is None or stats is None:
            return None
        return {
            "url": config.directory.url,
            "lookups": stats.lookups,
            "cache_hits": stats.cache_hits,
            "searches": stats.searches,
            "errors": stats.errors,
            "last_error": stats.last_error,
            "last_error_at": stats.last_error_at,
            "last_ok_at": stats.last_ok_at,
        }

    def _backends(self, config: Config, depth: QueueDepth | None) -> list[dict[str, Any]]:
        """One entry per configured backend and per backend that still has rows."""
        lanes = self._lanes()
        problems = self._config_problems()
        entries = []
        for name in sorted(set(config.backends) | set(depth.counts if depth else ())):
            cfg = config.backends.get(name)
            lane = lanes.get(name)
            counts = dict(depth.counts.get(name, {})) if depth else {}
            entries.append(
                {
                    "name": name,
                    "type": cfg.type if cfg is not None else None,
                    "configured": cfg is not None,
                    "lane": _lane_label(lane, name in self._not_started),
                    "in_flight": lane.in_flight if lane is not None else 0,
                    "concurrency": cfg.concurrency if cfg is not None else None,
                    "counts": counts,
                    "pending": counts.get("pending", 0) + counts.get("in_flight", 0),
                    "oldest_pending_age": depth.oldest_age(name) if depth else None,
                    "last_error": self._last_errors.get(name),
                    "misconfigured": problems.get(name),
                }
            )
        return entries


def _lane_label(lane: LaneState | None, start_failed: bool) -> str:
    if start_failed:
        return "start_failed"
    if lane is None:
        return "none"
    return "running" if lane.running else "stopped"


__all__ = ["ObservedQueue", "StatusView"]
