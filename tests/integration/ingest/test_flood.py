"""Issue 13 acceptance: a well-behaved source loses nothing while the daemon is attacked.

``adsync run`` with the Unix socket, loopback TCP and a webhook target. Meanwhile an
unprivileged uid holds 1,000 TCP connections (reopening any that is closed) and sends
2,500 mutated frames before any handshake, and a root process with the key sends 2,500
mutated frames after a real handshake and on the Unix socket. A Unix and a TCP source
keep sending changes the whole time: every one is ACKed 0 and delivered to the target.
Latency under attack is reported by ``bench/flood.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.ingest.psk import load_or_create_psk
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.flood import FUZZ_PASSWORD, HOSTILE, mutated_frames, write_frames
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

from .hostile import NOBODY, free_port, needs_root, run_as, wait_line

pytestmark = pytest.mark.slow

HOOK_KEY_ENV = "ADSYNC_FLOOD_HOOK_KEY"
HOOK_KEY = "flood-webhook-signing-key"


class Source:
    """A well-behaved source: one connection, one change at a time, until told to stop."""

    def __init__(self, connect: Any, name: str) -> None:
        self.connect = connect
        self.name = name
        self.statuses: list[int] = []
        self.event_ids: list[str] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self, at_least: int) -> None:
        try:
            with self.connect() as client:
                while len(self.statuses) < at_least or not self.stop.is_set():
                    event_id = os.urandom(16)
                    password = REGISTRY.password(f"Flood-{self.name}-{os.urandom(6).hex()}")
                    ack = client.change(
                        account=f"{self.name}{len(self.statuses)}",
                        password=Secret(password),
                        changed_at_ms=1_700_000_000_000,
                        event_id=event_id,
                    )
                    self.statuses.append(int(ack.status))
                    self.event_ids.append(event_id.hex())
        except Exception as exc:  # asserted below (type and message only)
            self.errors.append(f"{type(exc).__name__}: {exc}")


@needs_root
async def test_sources_lose_nothing_under_fuzz_and_connection_flood(tmp_path: Path) -> None:
    REGISTRY.password(FUZZ_PASSWORD)
    os.environ[HOOK_KEY_ENV] = HOOK_KEY
    work = tmp_path / "d"
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(work, 0o755)
    port = free_port()
    async with WebhookTarget(HOOK_KEY) as target:
        backend = {
            "type": "webhook",
            "url": target.url,
            "secret": f"env:{HOOK_KEY_ENV}",
            "concurrency": 16,
            "retry": {"backoff": {"initial": "100ms", "max": "500ms", "factor": 2, "jitter": 0.1}},
        }
        config = base_config(
            work,
            {"hr": backend},
            ingest={"tcp": f"127.0.0.1:{port}", "allowed_uids": [0]},
            logging={"level": "info", "format": "json"},
        )
        daemon = DaemonProcess(work, config)
        await asyncio.to_thread(daemon.start)
        try:
            await check_under_attack(daemon, config, port, target, work)
        finally:
            try:
                await asyncio.to_thread(daemon.stop, 60)
            except subprocess.TimeoutExpired:
                daemon.kill()
    os.environ.pop(HOOK_KEY_ENV, None)


async def check_under_attack(
    daemon: DaemonProcess, config: dict[str, Any], port: int, target: WebhookTarget, work: Path
) -> None:
    hostile: subprocess.Popen[str] | None = None
    authed: subprocess.Popen[str] | None = None
    sources: list[Source] = []
    shared: Path | None = None
    try:
        psk_file = Path(config["ingest"]["psk_file"])
        psk = load_or_create_psk(psk_file)
        shared = Path(tempfile.mkdtemp(prefix="adsync-flood-"))  # the other uid reads it
        os.chmod(shared, 0o755)
        frames = write_frames(
            shared / "frames.hex",
            mutated_frames(2500, 13, ("hello", "auth", "change", "check")),
        )
        os.chmod(frames, 0o644)
        hostile = run_as(NOBODY, HOSTILE, "127.0.0.1", str(port), "1000", str(frames), "keep")
        assert await asyncio.to_thread(wait_line, hostile) == "ready"
        authed = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adsync.testing.flood",
                "authed",
                "--count",
                "2500",
                "--seed",
                "29",
                "--tcp",
                f"127.0.0.1:{port}",
                "--psk-file",
                str(psk_file),
                "--unix",
                str(daemon.unix_socket),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        unix = Source(lambda: IngestClient.unix(daemon.unix_socket), "unix")
        tcp = Source(lambda: IngestClient.tcp("127.0.0.1", port, psk), "tcp")
        sources = [unix, tcp]
        running = asyncio.gather(*(asyncio.to_thread(s.run, 100) for s in sources))
        try:
            assert await asyncio.to_thread(wait_line, hostile) == "sent"
            out, err = await asyncio.to_thread(authed.communicate, timeout=600)
            assert authed.returncode == 0, err[-2000:]
        finally:
            for source in sources:
                source.stop.set()
            await running
        stats = await asyncio.to_thread(hostile.communicate, "", 60)
    finally:
        for source in sources:
            source.stop.set()
        for proc in (hostile, authed):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log_tail()
    assert (unix.errors, tcp.errors) == ([], [])
    assert unix.statuses == [0] * len(unix.statuses) and len(unix.statuses) >= 100
    assert tcp.statuses == [0] * len(tcp.statuses) and len(tcp.statuses) >= 100
    hostile_stats = stats[0].strip().splitlines()[-1]
    assert '"sent": 2500' in hostile_stats, hostile_stats
    assert '"sent": 2500' in out, out

    wanted = set(unix.event_ids) | set(tcp.event_ids)
    for _ in range(1800):  # a hang guard on a loaded machine, not a timing assertion
        if wanted <= {d.event_id for d in target.deliveries}:
            break
        await asyncio.sleep(0.1)
    missing = len(wanted - {d.event_id for d in target.deliveries})
    outcomes = Counter(
        (e.get("outcome"), e.get("state"))
        for e in daemon.log_events()
        if e.get("event") == "delivery"
    )
    assert missing == 0, f"{missing} of {len(wanted)} not delivered; outcomes {outcomes}"
    refused = sum(1 for e in daemon.log_events() if e.get("event") == "ingest_protocol_error")
    assert refused >= 2500  # the fuzz really reached the parser
