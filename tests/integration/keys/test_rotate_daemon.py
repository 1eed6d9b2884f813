"""Acceptance: rotate the data key under a burst while the target is down, with the real daemon."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

from .conftest import data_keys, digest, row_keys

pytestmark = pytest.mark.slow

SECRET_ENV = "ADSYNC_KEYS_WEBHOOK_SECRET"
SECRET = "keys-webhook-signing-key"


@pytest.fixture
def secret_env() -> Iterator[str]:
    os.environ[SECRET_ENV] = SECRET
    yield SECRET
    os.environ.pop(SECRET_ENV, None)


@dataclass
class Burst:
    socket: Path
    digests: dict[str, str] = field(default_factory=dict)  # event id hex -> password sha256
    acks: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self, at_least: int) -> None:
        try:
            with IngestClient.unix(self.socket) as client:
                n = 0
                while not (self.stop.is_set() and n >= at_least):
                    event_id = os.urandom(16)
                    password = REGISTRY.password(f"Rotate-{os.urandom(8).hex()}-ß")
                    ack = client.change(
                        account=f"rot{n}",
                        password=Secret(password),
                        changed_at_ms=1_700_000_000_000 + n,
                        event_id=event_id,
                        domain="KEYS",
                    )
                    self.digests[event_id.hex()] = digest(password)
                    self.acks.append(int(ack.status))
                    n += 1
        except BaseException as exc:
            self.error = exc

    def wait_sent(self, n: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while len(self.acks) < n:
            assert self.error is None, repr(self.error)
            assert time.monotonic() < deadline, f"only {len(self.acks)} sent"
            time.sleep(0.01)


def wait_until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


async def test_rotate_during_a_burst_with_the_target_down_then_check_and_deliver(
    tmp_path: Path, secret_env: str
) -> None:
    async with WebhookTarget(secret_env) as target:
        target.respond(503)  # down during the whole burst and the rotation
        backend = {
            "type": "webhook",
            "url": target.url,
            "secret": f"env:{SECRET_ENV}",
            "concurrency": 4,
            "timeout": "5s",
            "retry": {"backoff": {"initial": "100ms", "max": "300ms", "factor": 2, "jitter": 0.1}},
        }
        config = base_config(tmp_path, {"hook": backend}, logging={"level": "info"})
        daemon = DaemonProcess(tmp_path, config)
        await asyncio.to_thread(daemon.start)
        try:
            burst = Burst(daemon.unix_socket)
            sender = threading.Thread(target=burst.run, args=(300,))
            sender.start()
            try:
                await asyncio.to_thread(burst.wait_sent, 100)
                rotate = await asyncio.to_thread(_cli, daemon, "keys", "rotate", "--no-wait")
                assert rotate.returncode == 0, rotate.stdout + rotate.stderr
                assert "data key 3 added and active" in rotate.stdout
                sent_at_rotation = len(burst.acks)
                await asyncio.to_thread(burst.wait_sent, sent_at_rotation + 100)
            finally:
                burst.stop.set()
                await asyncio.to_thread(sender.join, 60)
            assert burst.error is None, repr(burst.error)
            assert burst.acks == [0] * len(burst.acks)  # every change stored, none refused
            total = len(burst.digests)
            assert not target.deliveries  # nothing got through while it was down

            # the daemon re-seals everything (also rows it sealed before it noticed)
            await asyncio.to_thread(
                wait_until,
                lambda: (
                    row_keys(daemon.workdir / "queue.db") == {3: total}
                    and data_keys(daemon.workdir / "queue.db") == [(3, 1)]
                ),
                60,
                "every row on key 3 and key 1 retired",
            )
            check = await asyncio.to_thread(_cli, daemon, "keys", "check")
            assert check.returncode == 0, check.stdout + check.stderr
            assert f"key 3 (active): {total} rows open, 0 do not" in check.stdout

            target.clear_responses()  # the target is back
            await target.wait_for_deliveries(total, within=120)
            await asyncio.sleep(1.0)  # a duplicate would arrive now, if there were one
            got = [d.event_id for d in target.deliveries]
            assert len(got) == len(set(got)) == total  # exactly once
            assert {d.event_id: d.password_sha256 for d in target.deliveries} == burst.digests
            events = [e.get("event") for e in daemon.log_events()]
            assert "data_key_activated" in events and "data_key_retired" in events
            after = await asyncio.to_thread(_cli, daemon, "keys", "check")
            assert after.returncode == 0, after.stdout + after.stderr
        finally:
            await asyncio.to_thread(daemon.stop, 30)


def _cli(daemon: DaemonProcess, *args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "adsync", *args, "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
