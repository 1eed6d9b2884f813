"""The durability harness: one scripted workload against a real ``adsync run``, a crash in it
(a SIGKILL at a commit boundary, or a power cut replayed from the I/O log), a restart on what
survived, and the checks every run must pass.

The workload: three connections send changes for disjoint accounts (so each account's order
is its connection's order), one at a time, recording each ACK 0 with its monotonic time; four
webhook targets take deliveries — ``ok`` accepts, ``flaky`` answers 503 to its first attempts,
``hang`` stalls its requests until the end, ``refuse`` rejects everything (its rows end
failed); a SIGHUP reload, a data-key rotation and a master-key rotation (both through the CLI
beside the running daemon), and a second burst.

The checks, after the restart and a drain with every target accepting:
* every ACKed change is covered: for each account and each of ``ok``/``flaky``/``hang``, the
  last password delivered is the account's newest ACKed one or newer;
* never an older password after a newer one on any target, across the crash;
* duplicates (a change delivered twice) are counted and reported: at-least-once allows them
  only for a delivery whose outcome was not durable when the crash came.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adsync.ingest.client import IngestClient, IngestError
from adsync.ingest.wire import AckCode
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

SECRET_ENV = "ADSYNC_DURABILITY_WEBHOOK_SECRET"
CHECKED = ("ok", "flaky", "hang")
CONNECTIONS = 3
ACCOUNTS_PER_CONNECTION = 4


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StampedTarget(WebhookTarget):
    """A webhook fake that also notes when (monotonic ns) each accepted delivery arrived."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret=secret)
        self.stamps: list[tuple[str, int]] = []  # (password digest, t_ns)

    async def _hook(self, request: Any) -> Any:
        before = len(self.deliveries)
        response = await super()._hook(request)
        for delivery in self.deliveries[before:]:
            self.stamps.append((delivery.password_sha256, time.monotonic_ns()))
        return response


@dataclass
class Acked:
    account: str
    version: int
    t_ns: int


@dataclass
class Ledger:
    """What the sources were told (ACKs) and which digest is which (account, version)."""

    run: str
    versions: dict[str, tuple[str, int]] = field(default_factory=dict)  # digest → (acct, v)
    acked: list[Acked] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def password(self, account: str, version: int) -> str:
        value = REGISTRY.password(f"Dur-{self.run}-{account}-v{version}-Pässwörd")
        self.versions[sha(value)] = (account, version)
        return value

    def newest_acked(self, before_ns: int | None = None) -> dict[str, int]:
        newest: dict[str, int] = {}
        for ack in self.acked:
            if before_ns is None or ack.t_ns < before_ns:
                newest[ack.account] = max(newest.get(ack.account, 0), ack.version)
        return newest


def _send(socket_path: Path, ledger: Ledger, conn_no: int, count: int, first: int) -> None:
    """One source connection: ``count`` changes round-robin over its accounts, one at a time."""
    accounts = [f"c{conn_no}u{i}" for i in range(ACCOUNTS_PER_CONNECTION)]
    try:
        with IngestClient.unix(socket_path, timeout=10) as client:
            for n in range(count):
                account = accounts[n % len(accounts)]
                version = first + n // len(accounts)
                password = ledger.password(account, version)
                ack = client.change(
                    account=account,
                    password=Secret(password),
                    changed_at_ms=int(time.time() * 1000),
                    event_id=uuid.uuid4().bytes,
                    domain="DUR",
                    source_host="dc1",
                )
                if ack.status == AckCode.STORED:
                    with ledger.lock:
                        ledger.acked.append(Acked(account, version, time.monotonic_ns()))
    except (OSError, IngestError):
        pass  # the daemon died under us: what was ACKed is what counts


def burst(socket_path: Path, ledger: Ledger, count: int, first: int) -> None:
    threads = [
        threading.Thread(target=_send, args=(socket_path, ledger, c, count, first))
        for c in range(CONNECTIONS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def backends(targets: dict[str, StampedTarget]) -> dict[str, Any]:
    def hook(url: str) -> dict[str, Any]:
        return {
            "type": "webhook",
            "url": url,
            "secret": f"env:{SECRET_ENV}",
            "concurrency": 4,
            "timeout": "2s",
            "retry": {
                "backoff": {"initial": "50ms", "max": "200ms", "factor": 2, "jitter": 0.1},
                "max_rejections": 2,
            },
        }

    return {name: hook(target.url) for name, target in targets.items()}


class Targets:
    """The four webhook fakes, started in the test's loop."""

    def __init__(self) -> None:
        os.environ[SECRET_ENV] = "durability-webhook-signing-key"
        self.by_name = {n: StampedTarget(os.environ[SECRET_ENV]) for n in (*CHECKED, "refuse")}

    async def __aenter__(self) -> Targets:
        for target in self.by_name.values():
            await target.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for target in self.by_name.values():
            target.release()
            await target.__aexit__(*exc)

    def misbehave(self) -> None:
        self.by_name["flaky"].respond(503, times=6)
        self.by_name["hang"].stall()
        self.by_name["refuse"].respond(422, reason="policy")

    def behave(self) -> None:
        for target in self.by_name.values():
            target.clear_responses()
            target.release()


def cli(config_path: Path, *args: str, env: dict[str, str] | None = None) -> int:
    """An ``adsync`` CLI command beside the daemon; its exit code (never raises)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "adsync", *args, "--config", str(config_path)],
            capture_output=True,
            timeout=30,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        return -1
    return done.returncode


def config_for(work: Path, data: Path, targets: Targets) -> dict[str, Any]:
    """Sockets, config and log in ``work``; the queue and its keys in ``data``."""
    config = base_config(work, backends(targets.by_name))
    config["queue"] = {"path": str(data / "queue.db")}
    config["keys"] = {"provider": "file", "path": str(data / "master.key")}
    config["logging"] = {"level": "info", "format": "json"}
    return config


def workload(daemon: DaemonProcess, ledger: Ledger, env: dict[str, str] | None = None) -> None:
    """The scripted run (blocking). Survives the daemon dying at any point in it."""
    burst(daemon.unix_socket, ledger, count=24, first=1)
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGHUP)
    cli(daemon.config_path, "keys", "rotate", "--no-wait", env=env)
    burst(daemon.unix_socket, ledger, count=12, first=100)
    cli(daemon.config_path, "keys", "rotate", "--master", env=env)
    burst(daemon.unix_socket, ledger, count=12, first=200)


async def wait_delivered(
    targets: Targets,
    wanted: dict[str, int],
    versions: dict[str, tuple[str, int]],
    daemon: DaemonProcess,
    within: float = 60.0,
) -> None:
    """Until each checked target's newest delivery per account is at least ``wanted``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited during the drain:\n{daemon.log_tail()}")
        if not shortfall(targets, wanted, versions):
            await asyncio.sleep(0.3)  # anything older still queued would arrive now
            return
        await asyncio.sleep(0.05)


def shortfall(
    targets: Targets, wanted: dict[str, int], versions: dict[str, tuple[str, int]]
) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for name in CHECKED:
        last: dict[str, int] = {}
        for delivery in targets.by_name[name].deliveries:
            account, version = versions[delivery.password_sha256]
            last[account] = max(last.get(account, 0), version)
        lacking = [a for a, v in wanted.items() if last.get(a, 0) < v]
        if lacking:
            missing[name] = lacking
    return missing


def start(daemon: DaemonProcess, env: dict[str, str] | None = None) -> bool:
    """Start the daemon (with ``env``); False when it exits first (a crash hook at start)."""
    try:
        daemon.start(wait=30, env=env)
    except RuntimeError:
        return False
    return True


@dataclass
class Verdict:
    required: int  # account x target pairs that had to arrive
    missing: dict[str, list[str]]
    older_after_newer: list[str]
    duplicates: int

    @property
    def ok(self) -> bool:
        return not self.missing and not self.older_after_newer

    def summary(self) -> str:
        return (
            f"required={self.required} missing={sum(map(len, self.missing.values()))} "
            f"older_after_newer={len(self.older_after_newer)} duplicates={self.duplicates}"
        )


def judge(
    histories: Mapping[str, Iterable[str]], wanted: dict[str, int], versions: dict[str, Any]
) -> Verdict:
    """``histories``: per target, the digests it accepted in order, across the crash."""
    missing: dict[str, list[str]] = {}
    regressions: list[str] = []
    duplicates = 0
    for name, digests in histories.items():
        last: dict[str, int] = {}
        seen: defaultdict[tuple[str, int], int] = defaultdict(int)
        for digest in digests:
            account, version = versions[digest]
            if version < last.get(account, 0):
                regressions.append(f"{name}:{account} v{version} after v{last[account]}")
            last[account] = max(last.get(account, 0), version)
            seen[(account, version)] += 1
        duplicates += sum(n - 1 for n in seen.values())
        if name in CHECKED:
            lacking = [a for a, v in wanted.items() if last.get(a, 0) < v]
            if lacking:
                missing[name] = lacking
    return Verdict(len(wanted) * len(CHECKED), missing, regressions, duplicates)


def queue_counts(config_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "adsync", "queue", "status", "--json", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result
