"""The loopback HTTP listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/status`` (JSON).

Read-only: nothing here changes the daemon (reload goes by SIGHUP, so a local
process that can reach the port cannot reconfigure anything).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from adsync.observe.health import HealthReport
from adsync.observe.metrics import CONTENT_TYPE

log = structlog.get_logger("adsync.observe")


class ObserveServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: Callable[[], Awaitable[bytes]],
        health: Callable[[], Awaitable[HealthReport]],
        status: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:
        self.host = host
        self.port = port
        self._metrics = metrics
        self._health = health
        self._status = status
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._get_metrics)
        app.router.add_get("/healthz", self._get_health)
        app.router.add_get("/status", self._get_status)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        for address in self._runner.addresses:
            self.port = int(address[1])  # the real port when 0 was asked
            break
        log.info("observe_listening", address=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _get_metrics(self, request: web.Request) -> web.Response:
        body = await self._metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _get_health(self, request: web.Request) -> web.Response:
        report = await self._health()
        return _json(report.as_json(), 200 if report.ok else 503)

    async def _get_status(self, request: web.Request) -> web.Response:
        return _json(await self._status(), 200)


def _json(data: Any, status: int) -> web.Response:
    return web.Response(
        text=json.dumps(data, indent=2, sort_keys=True, default=str),
        status=status,
        content_type="application/json",
    )


__all__ = ["ObserveServer"]
