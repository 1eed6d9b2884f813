"""A scripted run against the real daemon, then a real scrape of /metrics on loopback."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from adsync.ingest.client import DaemonError, IngestClient
from adsync.ingest.codec import Auth, Hello
from adsync.observe.metrics import ALLOWED_LABELS
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

from .conftest import free_port, off_loop, pending_total, webhook

N = 12


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(table: dict[Any, float], name: str, **labels: str) -> float:
    return table.get((name, frozenset(labels.items())), 0.0)


def bad_handshake(port: int) -> None:
    """A TCP peer that does not know the PSK: its AUTH proof is wrong."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with IngestClient(sock, timeout=5, peer="test") as client:
        client.version = 2  # the sealed protocol: v1 would be refused before any proof
        client._versions = frozenset({2})
        rid = client.send(Hello(os.urandom(32), "intruder"))
        client.receive(time.monotonic() + 5)  # the challenge
        client.send(Auth(os.urandom(32)))
        try:
            client.receive(time.monotonic() + 5)
        except DaemonError as exc:
            assert "authentication failed" in str(exc)
        else:
            raise AssertionError(f"request {rid}: a wrong proof was accepted")


async def test_scrape_counts_a_scripted_run_and_leaks_nothing(
    targets: Any, make_daemon: Any
) -> None:
    target = await targets()
    tcp_port = free_port()
    daemon = make_daemon(
        {
            "hr": webhook(
                target.url,
                check_url=target.check_url,
                retry={"max_rejections": 0, "unknown_user_grace": "0s"},
            )
        },
        ingest={"tcp": f"127.0.0.1:{tcp_port}"},
        precheck={"backends": ["hr"], "timeout": "2s", "on_undecided": "accept"},
    )
    accounts = [f"acct-{secrets.token_hex(4)}" for _ in range(N)]
    passwords = {a: f"Pw-{secrets.token_urlsafe(12)}" for a in accounts}
    for p in passwords.values():
        REGISTRY.password(p)
    rejected, unknown = accounts[:2], accounts[2]
    for a in rejected:
        target.respond(422, account=a, reason="too weak")
    target.respond(404, account=unknown)
    target.answer_check(422, account=accounts[3], reason="policy says no")
    target.answer_check(200, account=accounts[4])
    await off_loop(daemon.start)

    def script() -> None:
        with IngestClient.unix(daemon.unix_socket) as client:
            ids = {a: os.urandom(16) for a in accounts}
            for a in accounts:
                ack = client.change(
                    account=a,
                    password=Secret(passwords[a]),
                    changed_at_ms=1_700_000_000_000,
                    event_id=ids[a],
                    domain="OPS",
                )
                assert ack.status == 0, ack.reason
            again = client.change(  # a resend: ACK 0, stored once
                account=accounts[5],
                password=Secret(passwords[accounts[5]]),
                changed_at_ms=1_700_000_000_000,
                event_id=ids[accounts[5]],
                domain="OPS",
            )
            assert again.status == 0
            assert (
                client.check(account=accounts[3], password=Secret(passwords[accounts[3]])).status
                == 1
            )
            assert (
                client.check(account=accounts[4], password=Secret(passwords[accounts[4]])).status
                == 0
            )
        bad_handshake(tcp_port)

    await off_loop(script)
    await off_loop(daemon.wait_for, lambda s: pending_total(s) == 0)
    held_open = await off_loop(IngestClient.unix, daemon.unix_socket)
    try:
        await off_loop(daemon.wait_for, lambda s: s["ingest"]["connections_open"] == 1)
        code, body = await off_loop(daemon.get, "/metrics")
    finally:
        held_open.close()
    assert code == 200
    text = body.decode()
    m = samples(text)

    delivered = N - 3
    assert value(m, "adsync_changes_received_total", transport="unix") == N + 1
    assert value(m, "adsync_changes_acked_total", transport="unix", outcome="stored") == N
    assert value(m, "adsync_changes_acked_total", transport="unix", outcome="duplicate") == 1
    assert value(m, "adsync_changes_busy_total", transport="unix") == 0
    assert value(m, "adsync_checks_total", verdict="reject") == 1
    assert value(m, "adsync_checks_total", verdict="accept") == 1
    assert value(m, "adsync_deliveries_total", backend="hr", outcome="delivered") == delivered
    assert value(m, "adsync_deliveries_total", backend="hr", outcome="rejected") == 2
    assert value(m, "adsync_deliveries_total", backend="hr", outcome="unknown_user") == 1
    assert value(m, "adsync_queue_deliveries", backend="hr", state="delivered") == delivered
    assert value(m, "adsync_queue_deliveries", backend="hr", state="failed") == 3
    assert value(m, "adsync_queue_deliveries", backend="hr", state="pending") == 0
    assert value(m, "adsync_queue_oldest_pending_age_seconds", backend="hr") == 0
    assert value(m, "adsync_delivery_latency_seconds_count", backend="hr") == delivered
    assert value(m, "adsync_delivery_latency_seconds_sum", backend="hr") > 0
    assert value(m, "adsync_ingest_auth_failures_total") == 1
    assert value(m, "adsync_ingest_connections") == 1
    assert value(m, "adsync_lane_running", backend="hr") == 1
    assert len(target.deliveries) == delivered

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert set(s.labels) - {"le"} <= ALLOWED_LABELS, s.name
    _, status_body = await off_loop(daemon.get, "/status")
    for exposed, what in ((body, "/metrics"), (status_body, "/status")):
        for a in accounts:
            assert a.encode() not in exposed, f"an account name appears in {what}"
        for p in passwords.values():
            digest = hashlib.sha256(p.encode()).hexdigest()[:12]
            assert p.encode() not in exposed, f"password sha256:{digest}… appears in {what}"
