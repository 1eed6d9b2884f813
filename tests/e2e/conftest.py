"""Fixtures for end-to-end tests: the real daemon as a subprocess, fake targets in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adsync.testing.daemon import DaemonProcess, base_config

WEBHOOK_SECRET_ENV = "ADSYNC_E2E_WEBHOOK_SECRET"


@pytest.fixture
def webhook_secret() -> str:
    os.environ[WEBHOOK_SECRET_ENV] = "e2e-webhook-signing-key"
    return os.environ[WEBHOOK_SECRET_ENV]


def webhook_backend(url: str, **extra: Any) -> dict[str, Any]:
    backend: dict[str, Any] = {
        "type": "webhook",
        "url": url,
        "secret": f"env:{WEBHOOK_SECRET_ENV}",
        "concurrency": 8,
        "timeout": "5s",
        "retry": {"backoff": {"initial": "100ms", "max": "500ms", "factor": 2, "jitter": 0.1}},
    }
    backend.update(extra)
    return backend


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Any]:
    started: list[DaemonProcess] = []

    def make(backends: dict[str, Any], **sections: Any) -> DaemonProcess:
        work = tmp_path / f"d{len(started)}"
        work.mkdir()
        daemon = DaemonProcess(work, base_config(work, backends, **sections))
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        try:
            daemon.stop(timeout=30)
        except Exception:
            daemon.kill()
