"""Reload under load: SIGHUP while a source keeps sending; nothing lost, nothing refused."""

from __future__ import annotations

import copy
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

from .conftest import off_loop, pending_total, webhook

pytestmark = pytest.mark.slow


@dataclass
class Burst:
    """One source connection sending CHANGEs one after another until told to stop."""

    socket: Any
    ids: list[str] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self, at_least: int) -> None:
        try:
            with IngestClient.unix(self.socket) as client:
                n = 0
                while not (self.stop.is_set() and n >= at_least):
                    event_id = os.urandom(16)
                    password = f"Burst-{os.urandom(8).hex()}"
                    REGISTRY.password(password)
                    ack = client.change(
                        account=f"user{n}",  # one change per account: none is superseded
                        password=Secret(password),
                        changed_at_ms=1_700_000_000_000 + n,
                        event_id=event_id,
                        domain="OPS",
                    )
                    self.ids.append(event_id.hex())
                    self.acks.append(int(ack.status))
                    n += 1
        except BaseException as exc:
            self.error = exc

    def sent(self) -> int:
        return len(self.ids)


def wait_count(burst: Burst, n: int) -> None:
    import time

    deadline = time.monotonic() + 60
    while burst.sent() < n:
        assert burst.error is None, repr(burst.error)
        assert time.monotonic() < deadline, f"only {burst.sent()} sent"
        time.sleep(0.01)


async def test_sighup_under_burst_adds_and_changes_backends_losing_nothing(
    targets: Any, make_daemon: Any
) -> None:
    a, b, c = await targets(), await targets(), await targets()
    b.slow(0.02)  # deliveries are in flight while b's lane is replaced
    daemon = make_daemon({"a": webhook(a.url), "b": webhook(b.url, concurrency=2)})
    await off_loop(daemon.start)
    burst = Burst(daemon.unix_socket)
    sender = threading.Thread(target=burst.run, args=(400,))
    sender.start()
    try:
        await off_loop(wait_count, burst, 100)
        new = copy.deepcopy(daemon.config)
        new["backends"]["c"] = webhook(c.url)
        new["backends"]["b"] = webhook(b.url, concurrency=4, timeout="3s")
        new["logging"] = {"level": "debug", "format": "json"}
        daemon.rewrite(new)
        before_hup = burst.sent()
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGHUP)
        await off_loop(daemon.wait_for, lambda s: s["reloads"] == 1)
        after_reload = burst.sent()
        await off_loop(wait_count, burst, after_reload + 100)
    finally:
        burst.stop.set()
        await off_loop(sender.join, 60)
    assert burst.error is None, repr(burst.error)  # the connection was never dropped
    assert burst.acks == [0] * len(burst.ids)  # zero refused, zero busy
    status = await off_loop(daemon.status)
    assert status["last_reload"]["ok"] is True
    assert status["last_reload"]["added"] == ["c"]
    assert status["last_reload"]["changed"] == ["b"]
    assert status["last_reload"]["restart_needed"] == []

    await off_loop(daemon.wait_for, lambda s: pending_total(s) == 0, 60)
    ids = burst.ids
    got_a = {d.event_id for d in a.deliveries}
    got_b = {d.event_id for d in b.deliveries}
    got_c = {d.event_id for d in c.deliveries}
    assert got_a == set(ids), f"a missed {len(set(ids) - got_a)}"
    assert got_b == set(ids), f"b missed {len(set(ids) - got_b)}"
    # c gets exactly the changes received from the reload on: a suffix of the stream
    first = min(ids.index(e) for e in got_c)
    assert got_c == set(ids[first:])
    assert before_hup <= first <= after_reload
    final = await off_loop(daemon.status)
    by_name = {x["name"]: x for x in final["backends"]}
    assert by_name["c"]["counts"].get("delivered") == len(ids) - first
    assert all(x["counts"].get("failed", 0) == 0 for x in final["backends"])
    assert all(x["lane"] == "running" for x in final["backends"])


async def test_invalid_config_is_refused_and_a_removed_backend_keeps_its_rows(
    targets: Any, make_daemon: Any
) -> None:
    a, b = await targets(), await targets()
    b.respond(503)  # b is down: its rows stay pending
    daemon = make_daemon({"a": webhook(a.url), "b": webhook(b.url)})
    await off_loop(daemon.start)
    good = copy.deepcopy(daemon.config)

    def send(n: int) -> list[int]:
        acks = []
        with IngestClient.unix(daemon.unix_socket) as client:
            for _ in range(n):
                password = f"Rm-{os.urandom(8).hex()}"
                REGISTRY.password(password)
                ack = client.change(
                    account=f"u{os.urandom(4).hex()}",
                    password=Secret(password),
                    changed_at_ms=1_700_000_000_000,
                    event_id=os.urandom(16),
                )
                acks.append(int(ack.status))
        return acks

    assert await off_loop(send, 5) == [0] * 5
    await off_loop(daemon.wait_for, lambda s: len(a.deliveries) == 5)

    # 1. an invalid file: the CLI refuses it without signalling the daemon...
    bad = copy.deepcopy(good)
    bad["backends"]["a"]["concurrency"] = 0
    daemon.rewrite(bad)
    result = await off_loop(daemon.cli, "reload")
    assert result.returncode == 1
    assert "backends.a.concurrency" in result.stderr
    assert (await off_loop(daemon.status))["reloads"] == 0
    # ...and a SIGHUP with it is refused by the daemon, which keeps its config
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGHUP)
    await off_loop(daemon.wait_for, lambda s: s["reloads"] == 1)
    status = await off_loop(daemon.status)
    assert status["last_reload"]["ok"] is False
    assert "backends.a.concurrency" in status["last_reload"]["error"]
    refused = [e for e in daemon.log_events() if e.get("event") == "config_reload_refused"]
    assert len(refused) == 1 and "backends.a.concurrency" in refused[0]["error"]
    assert await off_loop(send, 1) == [0]
    await off_loop(daemon.wait_for, lambda s: len(a.deliveries) == 6)

    # 2. remove b and change a restart-only key, with `adsync reload`
    removed = copy.deepcopy(good)
    del removed["backends"]["b"]
    removed["ingest"]["max_connections"] = 8
    daemon.rewrite(removed)
    result = await off_loop(daemon.cli, "reload")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed: b" in result.stdout
    assert "kept 6 pending deliveries of removed backend b" in result.stdout
    assert "waiting for a restart: ingest.max_connections" in result.stdout
    status = await off_loop(daemon.status)
    rows = {x["name"]: x for x in status["backends"]}
    assert rows["b"]["configured"] is False and rows["b"]["lane"] == "none"
    assert rows["b"]["counts"]["pending"] == 6  # kept, not deleted
    assert status["restart_needed"] == ["ingest.max_connections"]
    # new changes go to a only; nothing is fanned out to the removed backend
    assert await off_loop(send, 2) == [0, 0]

    def a_delivered(s: dict[str, Any]) -> int:
        return int({x["name"]: x for x in s["backends"]}["a"]["counts"].get("delivered", 0))

    await off_loop(daemon.wait_for, lambda s: a_delivered(s) == 8)
    status = await off_loop(daemon.status)
    rows = {x["name"]: x for x in status["backends"]}
    assert rows["b"]["counts"]["pending"] == 6
    assert rows["a"]["counts"]["delivered"] == 8
    assert len(a.deliveries) == 8
