"""Values the queue stores and hands out: states, counters, decisions, claims, views.

The dispatcher's retry rules (``adsync.dispatch.retry``) compute a
:class:`Decision` from a :class:`Counters`; both are defined here, beside the
rows that store them, so the queue never imports the dispatcher.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from adsync.plugin import Change


class AppendStatus(enum.Enum):
    STORED = "stored"  # committed durably now
    DUPLICATE = "duplicate"  # this event id was stored before; nothing queued (ACK 0)
    BUSY = "busy"  # not stored (queue full, disk error, closing): the source resends


@dataclass(frozen=True, slots=True)
class AppendResult:
    status: AppendStatus
    reason: str = ""


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"  # out of the backend's scope: never sent


TERMINAL_STATES = frozenset(
    {
        DeliveryState.DELIVERED,
        DeliveryState.FAILED,
        DeliveryState.SUPERSEDED,
        DeliveryState.SKIPPED,
    }
)
ACTIVE_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)  # the password is still needed


@dataclass(frozen=True, slots=True)
class Counters:
    """What a delivery row remembers between attempts."""

    attempts: int = 0  # attempts made before this outcome
    rejections: int = 0
    first_unknown_user_at: float | None = None
    expires_at: float = math.inf


class DecidedBy(enum.Enum):
    """Which rule set a decision's state: the outcome itself, or a limit that overrode it."""

    OUTCOME = "outcome"  # delivered, failed, or a retry
    EXPIRY = "expiry"  # at or past expires_at
    MAX_REJECTIONS = "max_rejections"
    UNKNOWN_USER_GRACE = "unknown_user_grace"


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state of a delivery after one attempt (``adsync.dispatch.retry.decide``)."""

    state: DeliveryState  # PENDING, or final: DELIVERED, FAILED, SKIPPED, SUPERSEDED
    attempts: int
    rejections: int
    first_unknown_user_at: float | None
    next_attempt_at: float | None  # only for PENDING
    note: str  # why, for the operator ("" when delivered)
    decided_by: DecidedBy = DecidedBy.OUTCOME

    def outcome_label(self, kind: str) -> str:
        """The row's ``last_outcome``: the outcome's kind, or ``expired`` when expiry ended it."""
        return "expired" if self.decided_by is DecidedBy.EXPIRY else kind

    def error(self, reason: str) -> str:
        """The row's ``last_error``: a limit that overrode the outcome says so first."""
        if self.decided_by is DecidedBy.OUTCOME:
            return reason
        return f"{self.note}: {reason}" if reason else self.note


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery the dispatcher now owns (state in_flight) with its opened change."""

    change_id: int
    backend: str
    change: Change
    counters: Counters
    account_hash: bytes
    received_at: float = 0.0  # when the queue stored the change (receipt-to-delivery latency)


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    claims: list[Claim]
    # earliest next_attempt_at among rows this lane could claim later (None: none, or not
    # read because the claim took all it asked for)
    next_due: float | None
    finished: int = 0  # rows superseded or expired while claiming
    now: float = 0.0  # the clock's time the claim used: rows due by then were taken
    full: bool = False  # it took all it asked for (some may have been unreadable): more may be due


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """One delivery row for the operator: who, when, which backend, why — never a password."""

    event_id: str
    backend: str
    state: DeliveryState
    account: str
    domain: str
    attempts: int
    rejections: int
    received_at: float
    updated_at: float
    next_attempt_at: float | None
    expires_at: float
    last_outcome: str | None
    last_error: str | None
    password_held: bool  # False: a retry is impossible, the user must change it again


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt to store: the claim, the rules' decision, what the row records."""

    claim: Claim
    decision: Decision
    outcome: str  # last_outcome (see ``Decision.outcome_label``)
    error: str  # last_error, already scrubbed


# backend, outcome label, next state, seconds from receipt (delivered only), scrubbed reason
RecordHook = Callable[[str, str, DeliveryState, float | None, str], None]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Deliveries by backend and state, and the oldest unfinished one per backend."""

    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    oldest_created_at: Mapping[str, float] = field(default_factory=dict)
    changes_holding_password: int = 0
    taken_at: float = 0.0  # the queue clock's time of the query

    def oldest_age(self, backend: str) -> float | None:
        created = self.oldest_created_at.get(backend)
        return None if created is None else max(0.0, self.taken_at - created)

    @property
    def unfinished(self) -> int:
        return sum(
            n
            for states in self.counts.values()
            for state, n in states.items()
            if state in ACTIVE_STATES
        )


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A row of the key table, without the wrapped key."""

    key_id: int
    purpose: str
    active: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class QueueStatus:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # backend → state → n
    pending_changes: int = 0  # changes whose password is still held
    oldest_pending_at: float | None = None
    oldest_pending_age: float | None = None  # seconds, by the queue's clock
