"""Intake: CHANGEs go to the queue (busy when closed), CHECKs to the started backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adsync.config import Config, config_from_data
from adsync.ingest.handler import AckStatus, Peer
from adsync.intake import Intake
from adsync.observe.status import StatusView
from adsync.plugin import Backend, BackendConfig, Candidate, Change, CheckResult, Outcome, Verdict
from adsync.queue.models import AppendResult, AppendStatus
from adsync.secret import Secret

PEER = Peer("unix", "uid=0 pid=1")


class Policy(Backend[BackendConfig]):
    def __init__(self, name: str) -> None:
        super().__init__(name, BackendConfig(type="test"))
        self.asked = 0

    async def deliver(self, change: Change) -> Outcome:
        return Outcome.delivered()

    async def check(self, candidate: Candidate) -> CheckResult:
        self.asked += 1
        return CheckResult.accept()


@dataclass
class Running:
    config: Config
    backends: Mapping[str, Backend[Any]] = field(default_factory=dict)


class FakeQueue:
    def __init__(self, results: list[AppendResult]) -> None:
        self.results = results
        self.appended: list[Change] = []

    async def append_many(self, changes: Sequence[Change]) -> list[AppendResult]:
        self.appended.extend(changes)
        return self.results[: len(changes)]


def config(on_undecided: str) -> Config:
    hook = {
        "type": "webhook",
        "url": "http://127.0.0.1:1/h",
        "check_url": "http://127.0.0.1:1/check",
        "secret": "env:X",
    }
    return config_from_data(
        {
            "ingest": {"unix_socket": "/run/x.sock", "tcp": None},
            "queue": {"path": "/var/lib/adsync/q.db"},
            "backends": {"up": dict(hook), "down": dict(hook)},
            "precheck": {"backends": ["up", "down"], "on_undecided": on_undecided},
        }
    )


def intake(running: Running) -> tuple[Intake, StatusView]:
    view = StatusView(config=lambda: running.config, lanes=dict, ingest=lambda: None)
    return Intake(running, view), view


def change() -> Change:
    return Change(
        event_id=b"\x01" * 16, account="alice", password=Secret("Intake-Pw-1"), changed_at_ms=1
    )


async def test_changes_are_stored_while_open_and_busy_before_and_after() -> None:
    handler, _ = intake(Running(config("accept")))
    assert [a.status for a in await handler.store_changes([change()], PEER)] == [AckStatus.BUSY]
    queue = FakeQueue(
        [AppendResult(AppendStatus.STORED), AppendResult(AppendStatus.BUSY, "queue is full")]
    )
    handler.open(queue)  # type: ignore[arg-type]  # a duck: append_many only
    acks = await handler.store_changes([change(), change()], PEER)
    assert [(a.status, a.reason) for a in acks] == [
        (AckStatus.STORED, ""),
        (AckStatus.BUSY, "queue is full"),
    ]
    handler.close()
    acks = await handler.store_changes([change()], PEER)
    assert [(a.status, a.reason) for a in acks] == [(AckStatus.BUSY, "daemon is shutting down")]
    assert len(queue.appended) == 2


async def test_a_listed_backend_that_did_not_start_counts_as_no_answer() -> None:
    up = Policy("up")
    strict = Running(config("reject"), {"up": up})
    handler, view = intake(strict)
    view.backend_not_started("down", "SecretRefError: environment variable X is not set")
    result = await handler.check(Candidate(account="alice", password=Secret("Intake-Pw-2")), PEER)
    assert result.verdict is Verdict.REJECT and "down" in result.reason
    assert up.asked == 1
    lenient, _ = intake(Running(config("accept"), {"up": up}))
    assert (await lenient.check(Candidate("alice", Secret("Intake-Pw-3")), PEER)).verdict is (
        Verdict.ACCEPT
    )
