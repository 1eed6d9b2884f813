"""Precheck: any reject rejects, all accept accepts, otherwise on_undecided; bounded in time."""

from __future__ import annotations

import asyncio

from adsync.plugin import Backend, BackendConfig, Candidate, Change, CheckResult, Outcome, Verdict
from adsync.precheck import combine, precheck
from adsync.secret import Secret


class PolicyBackend(Backend[BackendConfig]):
    def __init__(self, name: str, answer: CheckResult | None, delay: float = 0.0) -> None:
        super().__init__(name, BackendConfig(type="test"))
        self.answer = answer
        self.delay = delay
        self.cancelled = False

    async def deliver(self, change: Change) -> Outcome:
        return Outcome.delivered()

    async def check(self, candidate: Candidate) -> CheckResult:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.answer is None:
            raise RuntimeError("plugin bug")
        return self.answer


def candidate() -> Candidate:
    return Candidate(account="alice", password=Secret("N3w!Pass-precheck"))


def test_combine_rules() -> None:
    acc, rej, und = CheckResult.accept(), CheckResult.reject("too short"), CheckResult.undecided()
    assert combine({"a": acc, "b": acc}, "reject").verdict is Verdict.ACCEPT
    assert combine({"a": acc, "b": rej}, "accept") == CheckResult.reject("too short")
    assert combine({"a": acc, "b": None}, "accept").verdict is Verdict.ACCEPT
    assert combine({"a": acc, "b": None}, "reject").verdict is Verdict.REJECT
    assert combine({"a": und}, "reject").verdict is Verdict.REJECT
    assert "b" in combine({"a": acc, "b": None}, "accept").reason


async def test_reject_wins_and_cancels_slow_ones() -> None:
    slow = PolicyBackend("slow", CheckResult.accept(), delay=30)
    fast = PolicyBackend("fast", CheckResult.reject("history"))
    result = await precheck(candidate(), [slow, fast], within=30, on_undecided="accept")
    assert result == CheckResult.reject("history")
    await asyncio.sleep(0)
    assert slow.cancelled


async def test_a_backend_that_cannot_be_asked_counts_as_no_answer() -> None:
    ok = PolicyBackend("ok", CheckResult.accept())
    strict = await precheck(candidate(), [ok], within=1, on_undecided="reject", unanswered=["down"])
    assert strict.verdict is Verdict.REJECT and "down" in strict.reason
    lenient = await precheck(candidate(), [], within=1, on_undecided="accept", unanswered=["down"])
    assert lenient.verdict is Verdict.ACCEPT and "undecided (down)" in lenient.reason


async def test_timeout_applies_on_undecided() -> None:
    slow = PolicyBackend("slow", CheckResult.accept(), delay=30)
    ok = PolicyBackend("ok", CheckResult.accept())
    result = await precheck(candidate(), [slow, ok], within=0.05, on_undecided="reject")
    assert result.verdict is Verdict.REJECT
    assert "slow" in result.reason
    result = await precheck(candidate(), [slow, ok], within=0.05, on_undecided="accept")
    assert result.verdict is Verdict.ACCEPT


async def test_plugin_error_is_undecided() -> None:
    broken = PolicyBackend("broken", None)
    result = await precheck(candidate(), [broken], within=1, on_undecided="reject")
    assert result.verdict is Verdict.REJECT
    assert "broken" in result.reason


async def test_all_accept_and_none_configured() -> None:
    a, b = PolicyBackend("a", CheckResult.accept()), PolicyBackend("b", CheckResult.accept())
    assert (await precheck(candidate(), [a, b], within=1, on_undecided="reject")).verdict is (
        Verdict.ACCEPT
    )
    assert (await precheck(candidate(), [], within=1, on_undecided="reject")).verdict is (
        Verdict.ACCEPT
    )
