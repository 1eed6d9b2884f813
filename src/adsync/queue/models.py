"""Values the queue hands out: append results, claims, operator views."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from adsync.dispatch.retry import Counters
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery the dispatcher now owns (state in_flight) with its opened change."""

    change_id: int
    backend: str
    change: Change
    counters: Counters
    account_hash: bytes


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    claims: list[Claim]
    next_due: float | None  # earliest next_attempt_at among rows this lane could claim later
    finished: int = 0  # rows superseded or expired while claiming


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
class QueueStatus:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # backend → state → n
    pending_changes: int = 0  # changes whose password is still held
    oldest_pending_at: float | None = None
    oldest_pending_age: float | None = None  # seconds, by the queue's clock
