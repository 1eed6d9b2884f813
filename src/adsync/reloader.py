"""Starting backend plugins, and applying a config reload to the running daemon.

``adsync.reload`` decides what a reload changes (pure); the ``Reloader`` does it, one
reload at a time and all or nothing: it starts the new plugins first (one that cannot
start refuses the whole reload, and nothing changes), then swaps the queue's fan-out,
the backends and the config with no await in between, replaces the lanes through the
dispatcher, and closes the plugins it retired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from adsync.config import Config, ConfigError, load_config
from adsync.dispatch.dispatcher import Dispatcher
from adsync.observe.status import StatusView
from adsync.plugin import Backend, BackendConfig, load_backend_class
from adsync.queue.store import Queue
from adsync.reload import ReloadPlan, plan_reload
from adsync.secret import live_secret_values, scrub

log = structlog.get_logger("adsync.daemon")


class BackendStartError(Exception):
    """A plugin that could not be loaded or started; safe to log and show (scrubbed)."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"backend {backend}: cannot start ({reason})")
        self.reason = reason  # "SecretRefError: environment variable X is not set"


async def start_backend(name: str, config: BackendConfig) -> Backend[Any]:
    """Load, build and start ``name``'s plugin (at boot and at reload alike)."""
    backend: Backend[Any] | None = None
    try:
        backend = load_backend_class(config.type)(name, config)
        await backend.start()
    except Exception as exc:
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.close()
        detail = scrub(str(exc), *live_secret_values())  # a plugin may echo a secret
        why = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise BackendStartError(name, why) from None
    return backend


async def start_backends(
    configs: Mapping[str, BackendConfig], view: StatusView
) -> dict[str, Backend[Any]]:
    """Start every plugin at boot; one that fails is logged and shown, the others run.

    Its changes are still queued (the queue fans out to every configured backend)
    and wait for a reload that starts it (``plan_reload(not_started=...)``).
    """
    started: dict[str, Backend[Any]] = {}
    for name, config in configs.items():
        try:
            started[name] = await start_backend(name, config)
        except BackendStartError as exc:
            log.error(
                "backend_start_failed",
                backend=name,
                error=str(exc),
                hint="its changes stay queued; fix the cause, then `adsync reload`",
            )
            view.backend_not_started(name, exc.reason)
    return started


class Running(Protocol):
    """What a reload reads and swaps on the daemon."""

    config: Config
    config_path: Path | None
    backends: dict[str, Backend[Any]]
    queue: Queue | None
    dispatcher: Dispatcher | None
    view: StatusView


class Reloader:
    def __init__(self, running: Running) -> None:
        self._running = running
        self._lock = asyncio.Lock()
        self._closed = False

    async def close(self) -> None:
        """Refuse reloads from now on; a reload in progress finishes first."""
        self._closed = True
        async with self._lock:
            pass

    async def reload(self) -> bool:
        """Re-read the config file; True when the new config took effect."""
        async with self._lock:
            running = self._running
            if self._closed:
                return self._refused("the daemon is stopping")
            if running.config_path is None:
                return self._refused("the daemon was started without a config file")
            if running.dispatcher is None:
                return self._refused("the daemon is still starting")
            try:
                new = await asyncio.to_thread(load_config, running.config_path)
            except ConfigError as exc:
                return self._refused(str(exc))
            plan = plan_reload(running.config, new, not_started=running.view.not_started)
            fresh: dict[str, Backend[Any]] = {}
            try:
                for name in (*plan.added, *plan.changed):
                    fresh[name] = await start_backend(name, plan.config.backends[name])
            except BackendStartError as exc:
                for started in fresh.values():
                    with contextlib.suppress(Exception):
                        await started.close()
                return self._refused(str(exc))
            await self._apply(plan, fresh)
            return True

    def _refused(self, error: str) -> bool:
        log.error("config_reload_refused", error=error, kept="the running config")
        self._running.view.reload_refused(error)
        return False

    async def _apply(self, plan: ReloadPlan, fresh: dict[str, Backend[Any]]) -> None:
        running, view = self._running, self._running.view
        assert running.queue is not None and running.dispatcher is not None
        old_config, old_backends = running.config, running.backends
        new = plan.config
        # From here on, new changes fan out to the new backend set...
        running.queue.set_backends(
            list(new.backends), {n: c.retry.expire_after for n, c in new.backends.items()}
        )
        # ...and checks ask the new backends: both swapped with no await in between.
        running.backends = {
            **{n: b for n, b in old_backends.items() if n in new.backends and n not in fresh},
            **fresh,
        }
        running.config = new
        retiring = (*plan.removed, *plan.changed)
        for name in retiring:
            view.forget_start_failure(name)
        grace = new.dispatch.shutdown_grace
        await asyncio.gather(*(running.dispatcher.retire_lane(n, grace) for n in retiring))
        for name in (*plan.changed, *plan.added):
            running.dispatcher.add_lane(name, fresh[name], fresh[name].config)
        if old_config.logging != new.logging:
            configure_logging(new.logging.level, new.logging.format)
        if any(n in old_config.precheck.backends for n in retiring):
            await asyncio.sleep(old_config.precheck.timeout)  # checks in progress finish
        for name in retiring:
            if name in old_backends:  # a backend that did not start has nothing to close
                with contextlib.suppress(Exception):
                    await old_backends[name].close()
        kept = {}
        if plan.removed:
            depth = await running.queue.depth()
            kept = {n: depth.counts.get(n, {}).get("pending", 0) for n in plan.removed}
        view.reload_applied(plan, kept)
        _log_applied(plan, kept)


def _log_applied(plan: ReloadPlan, kept: dict[str, int]) -> None:
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


def configure_logging(level: str, fmt: str) -> None:
    from adsync.observe.logs import configure_logging as configure

    configure(level, fmt)


__all__ = [
    "BackendStartError",
    "Reloader",
    "Running",
    "configure_logging",
    "start_backend",
    "start_backends",
]
