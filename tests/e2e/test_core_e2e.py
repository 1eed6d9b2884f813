"""The core path end to end: sources → real daemon subprocess → webhook fake on loopback.

Passwords are registered with the session leak scan (tests/conftest.py), which
also scans every daemon's log and queue files (db, -wal, -shm) when the session
ends. Assertions compare digests, never passwords.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient, IngestError, change_message
from adsync.ingest.wire import AckCode, VerdictCode
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

from .conftest import webhook_backend

pytestmark = pytest.mark.slow


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def send_changes(socket_path: Path, items: list[tuple[str, str, bytes]]) -> list[Any]:
    """Pipeline (account, password, event_id) CHANGEs on one connection; the ACKs."""
    with IngestClient.unix(socket_path, timeout=30) as client:
        messages = [
            change_message(
                account=account,
                password=Secret(password),
                changed_at_ms=now_ms(),
                event_id=event_id,
                domain="ADSYNC",
                source_host="dc1",
                rid=1100 + i,
                object_guid=uuid.uuid4(),
            )
            for i, (account, password, event_id) in enumerate(items)
        ]
        return client.pipeline_changes(messages, window=64)


async def queue_status(daemon: DaemonProcess) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adsync",
        "queue",
        "status",
        "--json",
        "--config",
        str(daemon.config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_thousand_changes_over_several_connections_delivered_once_signed(
    make_daemon: Any, webhook_secret: str
) -> None:
    async with WebhookTarget(secret=webhook_secret) as target:
        daemon: DaemonProcess = make_daemon({"hook": webhook_backend(target.url)})
        await asyncio.to_thread(daemon.start)
        sent: dict[str, str] = {}  # event id hex → password digest
        batches = []
        for conn in range(4):
            batch = []
            for i in range(250):
                password = REGISTRY.password(f"Bulk-{conn}-{i}-Pässwörd€")
                event_id = os.urandom(16)
                sent[event_id.hex()] = sha(password)
                batch.append((f"user{conn}x{i}", password, event_id))
            batches.append(batch)
        acks = await asyncio.gather(
            *(asyncio.to_thread(send_changes, daemon.unix_socket, b) for b in batches)
        )
        assert all(a.status == AckCode.STORED for batch in acks for a in batch)
        delivered = await target.wait_for_deliveries(1000, within=120)

        counts = Counter(d.event_id for d in delivered)
        assert set(counts) == set(sent), "every ACKed change is delivered"
        assert max(counts.values()) == 1, "no change is delivered twice"
        assert {d.event_id: d.password_sha256 for d in delivered} == sent
        assert target.bad_signatures == []
        for d in delivered[:50]:  # the signature header is the HMAC of the exact body
            expected = hmac.new(webhook_secret.encode(), d.body, hashlib.sha256).hexdigest()
            assert d.headers["X-Adsync-Signature"] == f"sha256={expected}"

        # A repeated event id is ACKed 0 and not queued or delivered again.
        repeat_id = bytes.fromhex(next(iter(sent)))
        sentinel_id = os.urandom(16)
        acks2 = await asyncio.to_thread(
            send_changes,
            daemon.unix_socket,
            [
                ("user0x0", REGISTRY.password("Bulk-repeat-Pässwörd"), repeat_id),
                ("sentinel", REGISTRY.password("Sentinel-Pässwörd"), sentinel_id),
            ],
        )
        assert [a.status for a in acks2] == [AckCode.STORED, AckCode.STORED]
        await target.wait_for_deliveries(1001, within=30)
        status = await queue_status(daemon)
        assert status["counts"]["hook"]["delivered"] == 1001
        assert sum(status["counts"]["hook"].values()) == 1001, "the repeat was not queued"
        assert Counter(d.event_id for d in target.deliveries)[repeat_id.hex()] == 1


def burst_until_killed(socket_path: Path, prefix: str, acked: list[str], stop: threading.Event):
    """Send CHANGEs one at a time, recording each ACK 0, until the daemon goes away."""
    i = 0
    try:
        with IngestClient.unix(socket_path, timeout=10) as client:
            while not stop.is_set():
                event_id = os.urandom(16)
                ack = client.change(
                    account=f"{prefix}-{i}",
                    password=Secret(REGISTRY.password(f"Crash-{prefix}-{i}-Pässwörd")),
                    changed_at_ms=now_ms(),
                    event_id=event_id,
                )
                if ack.status == AckCode.STORED:
                    acked.append(event_id.hex())
                i += 1
    except (OSError, IngestError):
        pass  # the daemon was killed under us: what was ACKed is what counts


async def test_sigkill_during_bursts_loses_no_acked_change(
    make_daemon: Any, webhook_secret: str
) -> None:
    async with WebhookTarget(secret=webhook_secret) as target:
        await target.go_down()  # the target is down during all the kills
        daemon: DaemonProcess = make_daemon({"hook": webhook_backend(target.url)})
        acked: list[str] = []
        for round_no in range(3):
            await asyncio.to_thread(daemon.start)
            stop = threading.Event()
            before = len(acked)
            threads = [
                threading.Thread(
                    target=burst_until_killed,
                    args=(daemon.unix_socket, f"r{round_no}c{c}", acked, stop),
                )
                for c in range(3)
            ]
            for t in threads:
                t.start()
            while len(acked) < before + 150:  # kill in the middle of the burst
                await asyncio.sleep(0.01)
            await asyncio.to_thread(daemon.kill)
            stop.set()
            for t in threads:
                await asyncio.to_thread(t.join, 30)
        assert len(acked) >= 450
        await target.come_back()
        await asyncio.to_thread(daemon.start)
        # Changes committed whose ACK was lost to the kill are delivered too, so wait
        # for the ACKed ids themselves, not for a count.
        wanted = set(acked)
        try:
            async with asyncio.timeout(120):
                while not wanted <= {d.event_id for d in target.deliveries}:
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pass
        counts = Counter(d.event_id for d in target.deliveries)
        missing = wanted - set(counts)
        assert not missing, f"{len(missing)} ACKed changes were lost"
        # The target was down through every kill, so nothing was sent before a kill:
        # at-least-once never had to repeat anything here.
        assert max(counts.values()) == 1


async def test_one_account_never_gets_an_older_password_after_a_newer(
    make_daemon: Any, webhook_secret: str
) -> None:
    async with WebhookTarget(secret=webhook_secret) as target:
        await target.go_down()
        daemon: DaemonProcess = make_daemon({"hook": webhook_backend(target.url)})
        await asyncio.to_thread(daemon.start)
        passwords = [REGISTRY.password(f"Order-{n}-Pässwörd") for n in range(1, 6)]
        items = [("alice", p, os.urandom(16)) for p in passwords]
        for item in items:  # one after another, as a DC would report them
            acks = await asyncio.to_thread(send_changes, daemon.unix_socket, [item])
            assert acks[0].status == AckCode.STORED
        await target.come_back()
        newest = sha(passwords[-1])
        async with asyncio.timeout(60):
            while newest not in [d.password_sha256 for d in target.deliveries]:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # anything older still queued would arrive now
        order = [sha(p) for p in passwords]
        seen = [order.index(d.password_sha256) for d in target.deliveries]
        assert seen == sorted(seen), "an older password arrived after a newer one"
        assert seen[-1] == 4, "the newest password is the last one delivered"
        status = await queue_status(daemon)
        counts = status["counts"]["hook"]
        assert counts["delivered"] + counts["superseded"] == 5
        assert counts["pending"] == counts["in_flight"] == counts["failed"] == 0


async def test_check_accept_reject_with_reason_and_undecided_by_timeout(
    make_daemon: Any, webhook_secret: str
) -> None:
    async with WebhookTarget(secret=webhook_secret) as target:
        good = REGISTRY.password("Check-Good-Pässwörd1")
        bad = REGISTRY.password("Check-Bad-Pässwörd1")
        slow = REGISTRY.password("Check-Slow-Pässwörd1")
        target.answer_check(200)
        target.answer_check(422, reason="used before", password_sha256=sha(bad))
        target.answer_check(200, password_sha256=sha(slow), delay=5.0)
        daemon: DaemonProcess = make_daemon(
            {"hook": webhook_backend(target.url, check_url=target.check_url)},
            precheck={"backends": ["hook"], "timeout": "500ms", "on_undecided": "reject"},
        )
        await asyncio.to_thread(daemon.start)

        def ask(password: str) -> Any:
            with IngestClient.unix(daemon.unix_socket, timeout=10) as client:
                return client.check(account="alice", password=Secret(password), full_name="Alice A")

        verdict = await asyncio.to_thread(ask, good)
        assert verdict.status == VerdictCode.ACCEPT
        verdict = await asyncio.to_thread(ask, bad)
        assert (verdict.status, verdict.reason) == (VerdictCode.REJECT, "used before")
        verdict = await asyncio.to_thread(ask, slow)
        assert verdict.status == VerdictCode.REJECT  # on_undecided: reject
        assert "undecided" in verdict.reason
        assert [c.password_sha256 for c in target.checks][:2] == [sha(good), sha(bad)]
        # A CHECK queues nothing.
        status = await queue_status(daemon)
        assert sum(status["counts"].get("hook", {}).values()) == 0
