"""Retry arithmetic: an outcome and a delivery's counters → its next state (pure).

Rules (docs/queue.md has the operator's version):

* delivered → delivered.
* failed → failed at once.
* skipped (out of scope) and superseded (newer password on another DC) → final at
  once, with the reason; never retried, never sent.
* rejected → counted; the ``max_rejections``-th rejection is still retried, the
  next one fails the delivery (``max_rejections: 0`` fails the first).
* unreachable → retried, never counted.
* unknown_user → retried while ``now - first_unknown_user_at < unknown_user_grace``
  (the last retry is scheduled at the end of the grace), then failed.
* anything not delivered at or after ``expires_at`` is failed ("expired"); a
  retry is never scheduled after ``expires_at``.
* backoff: ``base = min(max, initial * factor**(attempts-1))``, then jitter
  multiplies by a factor in ``[1-jitter, 1+jitter]``; a ``Retry-After`` longer
  than that wins.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from adsync.plugin import BackoffConfig, Outcome, OutcomeKind, RetryConfig


class NextState(enum.StrEnum):
    DELIVERED = "delivered"
    PENDING = "pending"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Counters:
    """What a delivery row remembers between attempts."""

    attempts: int = 0  # attempts made before this outcome
    rejections: int = 0
    first_unknown_user_at: float | None = None
    expires_at: float = math.inf


@dataclass(frozen=True, slots=True)
class Decision:
    state: NextState
    attempts: int
    rejections: int
    first_unknown_user_at: float | None
    next_attempt_at: float | None  # only for PENDING
    note: str  # why, for the operator ("" when delivered)


def backoff_delay(cfg: BackoffConfig, attempt: int, unit: float) -> float:
    """Delay before retry number ``attempt`` (1-based); ``unit`` is uniform in [0, 1)."""
    n = max(0, attempt - 1)
    try:
        base = cfg.initial * math.pow(cfg.factor, n)
    except OverflowError:
        base = math.inf
    base = min(cfg.max, base)
    spread = cfg.jitter * (2.0 * unit - 1.0)
    return max(0.0, base * (1.0 + spread))


def decide(
    retry: RetryConfig,
    outcome: Outcome,
    counters: Counters,
    now: float,
    random: Callable[[], float],
) -> Decision:
    """The next state of a delivery that just got ``outcome`` at ``now``."""
    attempts = counters.attempts + 1
    rejections = counters.rejections
    first_unknown = counters.first_unknown_user_at
    kind = outcome.kind

    def done(state: NextState, note: str) -> Decision:
        return Decision(state, attempts, rejections, first_unknown, None, note)

    if kind is OutcomeKind.DELIVERED:
        return done(NextState.DELIVERED, "")
    if kind is OutcomeKind.FAILED:
        return done(NextState.FAILED, "failed")
    if kind is OutcomeKind.SKIPPED:
        return done(NextState.SKIPPED, "skipped")
    if kind is OutcomeKind.SUPERSEDED:
        return done(NextState.SUPERSEDED, "superseded")
    if now >= counters.expires_at:
        return done(NextState.FAILED, "expired")

    latest = counters.expires_at  # never schedule past the expiry
    if kind is OutcomeKind.REJECTED:
        rejections += 1
        if rejections > retry.max_rejections:
            return done(
                NextState.FAILED,
                f"rejected {rejections} times (max_rejections {retry.max_rejections})",
            )
    elif kind is OutcomeKind.UNKNOWN_USER:
        if first_unknown is None:
            first_unknown = now
        grace_end = first_unknown + retry.unknown_user_grace
        if now >= grace_end:
            return done(
                NextState.FAILED,
                f"unknown user for longer than unknown_user_grace ({retry.unknown_user_grace:g}s)",
            )
        latest = min(latest, grace_end)

    delay = backoff_delay(retry.backoff, attempts, random())
    if outcome.retry_after is not None and outcome.retry_after > delay:
        delay = outcome.retry_after
    return Decision(
        NextState.PENDING,
        attempts,
        rejections,
        first_unknown,
        min(now + delay, latest),
        f"retry after {kind.value}",
    )
