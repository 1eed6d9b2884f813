"""Retry arithmetic: an outcome and a delivery's counters → its next state (pure).

``Counters`` and ``Decision`` are the queue's values (``adsync.queue.models``):
the rules read one and make the other, the queue stores them.

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

import math
from collections.abc import Callable

from adsync.plugin import BackoffConfig, Outcome, OutcomeKind, RetryConfig
from adsync.queue.models import Counters, DecidedBy, Decision, DeliveryState


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

    def done(state: DeliveryState, note: str, by: DecidedBy = DecidedBy.OUTCOME) -> Decision:
        return Decision(state, attempts, rejections, first_unknown, None, note, by)

    if kind is OutcomeKind.DELIVERED:
        return done(DeliveryState.DELIVERED, "")
    if kind is OutcomeKind.FAILED:
        return done(DeliveryState.FAILED, "failed")
    if kind is OutcomeKind.SKIPPED:
        return done(DeliveryState.SKIPPED, "skipped")
    if kind is OutcomeKind.SUPERSEDED:
        return done(DeliveryState.SUPERSEDED, "superseded")
    if now >= counters.expires_at:
        return done(DeliveryState.FAILED, "expired", DecidedBy.EXPIRY)

    latest = counters.expires_at  # never schedule past the expiry
    if kind is OutcomeKind.REJECTED:
        rejections += 1
        if rejections > retry.max_rejections:
            return done(
                DeliveryState.FAILED,
                f"rejected {rejections} times (max_rejections {retry.max_rejections})",
                DecidedBy.MAX_REJECTIONS,
            )
    elif kind is OutcomeKind.UNKNOWN_USER:
        if first_unknown is None:
            first_unknown = now
        grace_end = first_unknown + retry.unknown_user_grace
        if now >= grace_end:
            return done(
                DeliveryState.FAILED,
                f"unknown user for longer than unknown_user_grace ({retry.unknown_user_grace:g}s)",
                DecidedBy.UNKNOWN_USER_GRACE,
            )
        latest = min(latest, grace_end)

    delay = backoff_delay(retry.backoff, attempts, random())
    if outcome.retry_after is not None and outcome.retry_after > delay:
        delay = outcome.retry_after
    return Decision(
        DeliveryState.PENDING,
        attempts,
        rejections,
        first_unknown,
        min(now + delay, latest),
        f"retry after {kind.value}",
    )
