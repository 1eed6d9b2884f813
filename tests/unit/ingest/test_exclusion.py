"""ExcludingHandler: excluded accounts never reach the daemon's handler; the others do, in
order; each excluded account is logged once and counted."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from adsync.ingest.exclusion import ExcludingHandler
from adsync.ingest.handler import Ack, AckStatus, Peer
from adsync.observe.metrics import Metrics
from adsync.plugin import Candidate, Change, CheckResult
from adsync.secret import Secret

PEER = Peer("tcp", "127.0.0.1:5555")


class Inner:
    def __init__(self) -> None:
        self.stored: list[str] = []
        self.checked: list[str] = []

    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> Sequence[Ack]:
        self.stored.extend(c.account for c in changes)
        return [
            Ack(AckStatus.STORED) if i % 2 == 0 else Ack(AckStatus.BUSY, "full")
            for i, _ in enumerate(changes)
        ]

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        self.checked.append(candidate.account)
        return CheckResult.reject("policy")


def change(account: str, n: int = 0) -> Change:
    return Change(bytes([n]) * 16, account, Secret("Not-Logged-1"), 1_700_000_000_000)


def metric(m: Metrics, name: str) -> float:
    value = m.registry.get_sample_value(name, {"transport": "tcp"})
    return value or 0.0


async def test_store_changes_refuses_excluded_and_keeps_order() -> None:
    inner, metrics = Inner(), Metrics()
    handler = ExcludingHandler(inner, metrics.on_excluded)
    accounts = ["alice", "HOST1$", "bob", "krbtgt_12345", "carol", "HOST1$", "krbtgt"]
    with structlog.testing.capture_logs() as logs:
        acks = await handler.store_changes([change(a, i) for i, a in enumerate(accounts)], PEER)
    assert inner.stored == ["alice", "bob", "carol"]
    assert [a.status for a in acks] == [
        AckStatus.STORED,
        AckStatus.REFUSED,
        AckStatus.BUSY,  # the inner handler's own answer, in its place
        AckStatus.REFUSED,
        AckStatus.STORED,
        AckStatus.REFUSED,
        AckStatus.REFUSED,
    ]
    excluded = [e for e in logs if e["event"] == "ingest_change_excluded"]
    assert [(e["account"], e["kind"]) for e in excluded] == [
        ("HOST1$", "machine"),
        ("krbtgt_12345", "rodc_krbtgt"),
        ("krbtgt", "krbtgt"),
    ]  # once per account
    assert "Not-Logged-1" not in repr(logs)
    assert metric(metrics, "adsync_changes_excluded_total") == 4
    assert metric(metrics, "adsync_changes_refused_total") == 4
    assert metric(metrics, "adsync_changes_received_total") == 4  # the inner one counts the rest


async def test_only_excluded_never_calls_inner() -> None:
    inner, metrics = Inner(), Metrics()
    handler = ExcludingHandler(inner, metrics.on_excluded)
    acks = await handler.store_changes([change("WEB01$"), change("CORP\\krbtgt")], PEER)
    assert [a.status for a in acks] == [AckStatus.REFUSED, AckStatus.REFUSED]
    assert inner.stored == []


async def test_check_of_excluded_account_is_accepted_without_asking() -> None:
    inner = Inner()
    handler = ExcludingHandler(inner, Metrics().on_excluded)
    ok = await handler.check(Candidate("krbtgt", Secret("x")), PEER)
    assert ok.verdict.name == "ACCEPT"
    assert inner.checked == []
    no = await handler.check(Candidate("alice", Secret("x")), PEER)
    assert no.verdict.name == "REJECT" and inner.checked == ["alice"]
