"""Run the daemon until asked to stop from another thread (the service control handler).

``adsync run`` stops on SIGTERM; a Windows service has no signals: the service
control manager calls ``SvcStop`` on another thread, which calls
``request_stop``. Plain asyncio, so it is tested on Linux with the real daemon.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import structlog

log = structlog.get_logger("adsync.service")


class ServiceRunner:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self.started = threading.Event()  # set once the daemon accepts connections

    def request_stop(self) -> None:
        """Thread-safe; a stop before the loop exists stops the daemon right after it starts."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)

    def run(self) -> None:
        """Load the config, configure logging (on stderr), serve until stopped."""
        from adsync.config import load_config
        from adsync.observe.logs import configure_logging

        config = load_config(self.config_path)
        configure_logging(config.logging.level, config.logging.format)
        from adsync.startup import explain

        try:
            os.umask(0o077)
            Path(config.queue.path).parent.mkdir(parents=True, exist_ok=True)
            asyncio.run(self._serve(config))
        except Exception as exc:  # the same one line as `adsync run` (docs/operations.md)
            failure = explain(exc, config)
            if failure is None:
                raise
            log.error(failure.event, error=failure.message, exit_code=failure.exit_code)
            raise failure from None

    async def _serve(self, config: object) -> None:
        from adsync.config import Config
        from adsync.daemon import Daemon

        assert isinstance(config, Config)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested.is_set():
            self._stop.set()
        daemon = Daemon(config, config_path=self.config_path)
        try:
            await daemon.start()
            log.info("service_running", config=str(self.config_path))
            self.started.set()
            await self._stop.wait()
        finally:
            await daemon.stop()
            self._loop = None
