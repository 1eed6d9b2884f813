"""Retry arithmetic: every rule of design.md §4 and the backoff bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adsync.dispatch.retry import backoff_delay, decide
from adsync.plugin import BackoffConfig, Outcome, RetryConfig
from adsync.queue.models import Counters, DecidedBy, DeliveryState

NOW = 1_000_000.0
MID = lambda: 0.5  # noqa: E731 - jitter factor exactly 1
RETRY = RetryConfig(
    backoff=BackoffConfig(initial=5, max=600, factor=2, jitter=0.2),
    max_rejections=2,
    unknown_user_grace=3600,
    expire_after=7 * 86400,
)
FAR = Counters(expires_at=NOW + 10 * 86400)


def test_delivered_is_delivered() -> None:
    d = decide(RETRY, Outcome.delivered(), FAR, NOW, MID)
    assert d.state is DeliveryState.DELIVERED
    assert (d.decided_by, d.outcome_label("delivered"), d.error("")) == (
        DecidedBy.OUTCOME,
        "delivered",
        "",
    )
    assert d.attempts == 1
    assert d.next_attempt_at is None


def test_failed_fails_at_once() -> None:
    d = decide(RETRY, Outcome.failed("HTTP 400"), FAR, NOW, MID)
    assert d.state is DeliveryState.FAILED
    assert d.note == "failed"
    assert d.decided_by is DecidedBy.OUTCOME  # the target's own answer: stored as it came
    assert (d.outcome_label("failed"), d.error("HTTP 400")) == ("failed", "HTTP 400")


def test_first_retry_waits_initial_then_grows_by_factor() -> None:
    d1 = decide(RETRY, Outcome.unreachable("down"), FAR, NOW, MID)
    assert d1.state is DeliveryState.PENDING
    assert d1.next_attempt_at == NOW + 5
    c = Counters(attempts=d1.attempts, expires_at=FAR.expires_at)
    d2 = decide(RETRY, Outcome.unreachable("down"), c, NOW, MID)
    assert d2.next_attempt_at == NOW + 10
    c = Counters(attempts=3, expires_at=FAR.expires_at)
    assert decide(RETRY, Outcome.unreachable("down"), c, NOW, MID).next_attempt_at == NOW + 40


def test_backoff_is_capped_at_max() -> None:
    c = Counters(attempts=50, expires_at=FAR.expires_at)
    assert decide(RETRY, Outcome.unreachable("x"), c, NOW, MID).next_attempt_at == NOW + 600
    c = Counters(attempts=100_000, expires_at=FAR.expires_at)  # factor**n overflows a float
    assert decide(RETRY, Outcome.unreachable("x"), c, NOW, MID).next_attempt_at == NOW + 600


def test_jitter_uses_the_injected_random_source() -> None:
    low = decide(RETRY, Outcome.unreachable("x"), FAR, NOW, lambda: 0.0)
    high = decide(RETRY, Outcome.unreachable("x"), FAR, NOW, lambda: 0.999999)
    assert low.next_attempt_at == pytest.approx(NOW + 5 * 0.8)
    assert high.next_attempt_at == pytest.approx(NOW + 5 * 1.2, rel=1e-6)


def test_unreachable_is_never_counted_as_rejection() -> None:
    c = FAR
    for _ in range(20):
        d = decide(RETRY, Outcome.unreachable("503"), c, NOW, MID)
        assert d.state is DeliveryState.PENDING
        assert d.error("503") == "503"  # a retry keeps the target's reason as it is
        c = Counters(d.attempts, d.rejections, d.first_unknown_user_at, c.expires_at)
    assert c.rejections == 0
    assert c.attempts == 20


def test_rejections_fail_after_max_rejections() -> None:
    c = FAR
    states = []
    for _ in range(3):
        d = decide(RETRY, Outcome.rejected("policy"), c, NOW, MID)
        states.append(d.state)
        c = Counters(d.attempts, d.rejections, d.first_unknown_user_at, c.expires_at)
    # max_rejections=2: two rejections are retried, the third fails
    assert states == [DeliveryState.PENDING, DeliveryState.PENDING, DeliveryState.FAILED]
    assert "rejected 3 times" in d.note
    assert d.decided_by is DecidedBy.MAX_REJECTIONS
    assert d.outcome_label("rejected") == "rejected"
    assert d.error("too weak") == "rejected 3 times (max_rejections 2): too weak"
    assert d.error("") == d.note


def test_max_rejections_zero_fails_first_rejection() -> None:
    retry = RETRY.model_copy(update={"max_rejections": 0})
    assert decide(retry, Outcome.rejected("p"), FAR, NOW, MID).state is DeliveryState.FAILED


def test_rejections_interleaved_with_unreachable_count_only_rejections() -> None:
    c = Counters(attempts=7, rejections=1, expires_at=FAR.expires_at)
    d = decide(RETRY, Outcome.unreachable("x"), c, NOW, MID)
    assert (d.state, d.rejections) == (DeliveryState.PENDING, 1)
    d = decide(RETRY, Outcome.rejected("p"), c, NOW, MID)
    assert (d.state, d.rejections) == (DeliveryState.PENDING, 2)


def test_unknown_user_retried_within_grace_then_failed() -> None:
    d = decide(RETRY, Outcome.unknown_user(), FAR, NOW, MID)
    assert d.state is DeliveryState.PENDING
    assert d.first_unknown_user_at == NOW
    c = Counters(d.attempts, d.rejections, d.first_unknown_user_at, FAR.expires_at)
    later = decide(RETRY, Outcome.unknown_user(), c, NOW + 3599, MID)
    assert later.state is DeliveryState.PENDING
    assert later.first_unknown_user_at == NOW  # the first sighting is kept
    assert later.next_attempt_at == NOW + 3600  # the last retry lands on the grace's end
    end = decide(RETRY, Outcome.unknown_user(), c, NOW + 3600, MID)
    assert end.state is DeliveryState.FAILED
    assert "unknown_user_grace" in end.note
    assert end.decided_by is DecidedBy.UNKNOWN_USER_GRACE
    assert end.error("no such user").endswith("(3600s): no such user")


def test_unknown_user_with_zero_grace_fails_at_once() -> None:
    retry = RETRY.model_copy(update={"unknown_user_grace": 0.0})
    assert decide(retry, Outcome.unknown_user(), FAR, NOW, MID).state is DeliveryState.FAILED


def test_retry_after_is_honoured_when_longer_than_backoff() -> None:
    d = decide(RETRY, Outcome.unreachable("429", retry_after=120), FAR, NOW, MID)
    assert d.next_attempt_at == NOW + 120
    d = decide(RETRY, Outcome.rejected("busy", retry_after=1), FAR, NOW, MID)
    assert d.next_attempt_at == NOW + 5  # shorter than the backoff: backoff wins


@pytest.mark.parametrize(
    "outcome",
    [Outcome.unreachable("x"), Outcome.rejected("x"), Outcome.unknown_user()],
    ids=["unreachable", "rejected", "unknown_user"],
)
def test_past_expiry_is_failed_expired(outcome: Outcome) -> None:
    c = Counters(attempts=1, expires_at=NOW)
    d = decide(RETRY, outcome, c, NOW, MID)
    assert d.state is DeliveryState.FAILED
    assert d.note == "expired"
    assert d.decided_by is DecidedBy.EXPIRY
    assert (d.outcome_label(outcome.kind.value), d.error("down")) == ("expired", "expired: down")


def test_delivered_after_expiry_still_counts_as_delivered() -> None:
    c = Counters(attempts=1, expires_at=NOW - 1)
    assert decide(RETRY, Outcome.delivered(), c, NOW, MID).state is DeliveryState.DELIVERED


def test_retry_is_never_scheduled_after_expiry() -> None:
    c = Counters(attempts=0, expires_at=NOW + 3)
    d = decide(RETRY, Outcome.unreachable("x", retry_after=1000), c, NOW, MID)
    assert d.state is DeliveryState.PENDING
    assert d.next_attempt_at == NOW + 3


@given(
    initial=st.floats(0.001, 1e4),
    factor=st.floats(1.0, 10.0),
    maximum=st.floats(0.001, 1e6),
    jitter=st.floats(0.0, 1.0),
    attempt=st.integers(1, 10_000),
    unit=st.floats(0.0, 1.0, exclude_max=True),
)
def test_backoff_bounds(
    initial: float, factor: float, maximum: float, jitter: float, attempt: int, unit: float
) -> None:
    cfg = BackoffConfig(initial=initial, max=maximum, factor=factor, jitter=jitter)
    n = attempt - 1
    if n * math.log(factor) >= math.log(maximum / initial) + 1:
        base = maximum  # far past the cap (and factor**n may not even be a float)
    else:
        base = min(maximum, initial * factor**n)
    delay = backoff_delay(cfg, attempt, unit)
    assert math.isfinite(delay)
    assert base * (1 - jitter) - 1e-9 * base <= delay <= base * (1 + jitter) + 1e-9 * base
    assert delay <= maximum * (1 + jitter) * (1 + 1e-12)


@given(attempt=st.integers(1, 60), unit=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_grows_monotonically_without_jitter(attempt: int, unit: float) -> None:
    cfg = BackoffConfig(initial=1, max=1e9, factor=2, jitter=0)
    assert backoff_delay(cfg, attempt + 1, unit) >= backoff_delay(cfg, attempt, unit)
