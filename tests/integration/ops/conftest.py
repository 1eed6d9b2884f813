"""The real daemon (subprocess) with its loopback metrics listener, and webhook fakes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.webhook import WebhookTarget

SECRET_ENV = "ADSYNC_OPS_WEBHOOK_SECRET"
SECRET = "ops-webhook-signing-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    backend: dict[str, Any] = {
        "type": "webhook",
        "url": url,
        "secret": f"env:{SECRET_ENV}",
        "concurrency": 4,
        "timeout": "5s",
        "retry": {"backoff": {"initial": "100ms", "max": "300ms", "factor": 2, "jitter": 0.1}},
    }
    backend.update(extra)
    return backend


class OpsDaemon(DaemonProcess):
    """A DaemonProcess whose metrics listener is on a free loopback port."""

    def start(self, wait: float = 20.0) -> None:
        super().start(wait)
        deadline = time.monotonic() + wait
        while True:  # the listener opens right after the ingest socket
            try:
                http_get(self.base + "/healthz", timeout=2.0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def base(self) -> str:
        return f"http://{self.config['metrics']['listen']}"

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.base + path)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        data: dict[str, Any] = json.loads(body)
        return data

    def rewrite(self, config: dict[str, Any]) -> None:
        """Replace the config file atomically (as an editor's save would)."""
        self.config = config
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        os.replace(tmp, self.config_path)

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "adsync", *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200"},
        )

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status()
            if predicate(last):
                return
            time.sleep(0.1)
        raise AssertionError(f"condition not met in {timeout}s; status: {json.dumps(last)[:2000]}")


def pending_total(status: dict[str, Any]) -> int:
    return sum(int(b["pending"]) for b in status["backends"] if b["configured"])


@pytest.fixture
def secret_env() -> Iterator[str]:
    os.environ[SECRET_ENV] = SECRET
    yield SECRET
    os.environ.pop(SECRET_ENV, None)


@pytest.fixture
async def targets(secret_env: str) -> AsyncIterator[Callable[[], Any]]:
    started: list[WebhookTarget] = []

    async def make() -> WebhookTarget:
        target = WebhookTarget(secret_env)
        await target.__aenter__()
        started.append(target)
        return target

    yield make
    for target in started:
        await target.__aexit__(None, None, None)


@pytest.fixture
def make_daemon(tmp_path: Path, secret_env: str) -> Iterator[Callable[..., OpsDaemon]]:
    made: list[OpsDaemon] = []

    def make(backends: dict[str, Any], **sections: Any) -> OpsDaemon:
        work = tmp_path / f"d{len(made)}"
        work.mkdir()
        sections.setdefault("metrics", {"listen": f"127.0.0.1:{free_port()}"})
        sections.setdefault("logging", {"level": "info", "format": "json"})
        daemon = OpsDaemon(work, base_config(work, backends, **sections))
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        try:
            daemon.stop(timeout=30)
        except Exception:
            daemon.kill()


async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Blocking client calls run off the loop: the fake targets live on it."""
    return await asyncio.to_thread(fn, *args)
