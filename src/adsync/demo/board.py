"""The demo's picture of the world: one row per scenario and target, fed from queue snapshots.

Pure logic: it gets ``DeliveryInfo`` rows (what ``Queue.list_deliveries`` returns, which
never holds a password) and turns changes between two snapshots into event lines. A
poll can miss a short state; the attempt counter still tells how many tries were made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from adsync.demo.scenarios import SCENARIOS, Scenario
from adsync.queue.models import DeliveryInfo, DeliveryState
from adsync.wording import plural

CHECK_TARGET = "policy check"
_ORIGIN = re.compile(r"^https?://[^\s/]+: ")
TERMINAL = frozenset({"delivered", "failed", "superseded", "accepted", "rejected"})


@dataclass
class Row:
    """One scenario's way to one target (or its policy check)."""

    scenario: Scenario
    target: str
    state: str = "sending"
    attempts: int = 0
    outcome: str = ""  # last outcome label: delivered, unreachable, unknown_user, …
    detail: str = ""  # the last reason, for the operator (never a password)
    outcomes: list[str] = field(default_factory=list)  # every outcome label seen, in order
    next_attempt_at: float | None = None  # wall clock, while pending after a failed attempt

    @property
    def account(self) -> str:
        return self.scenario.account

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # seconds since the demo started
    text: str


class Board:
    """Rows in scenario order, plus the narrated events."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.events: list[Event] = []
        self._by_delivery: dict[tuple[str, str], Row] = {}

    # --- what the runner tells it ----------------------------------------------------------

    def note(self, at: float, text: str) -> Event:
        event = Event(at, text)
        self.events.append(event)
        return event

    def add_check(self, scenario: Scenario) -> Row:
        row = Row(scenario, CHECK_TARGET, state="asking")
        self.rows.append(row)
        return row

    def check_answered(self, row: Row, verdict: str, reason: str, at: float) -> Event:
        row.state = verdict
        row.attempts = 1
        row.outcome = verdict
        row.detail = reason
        row.outcomes.append(verdict)
        why = f": {reason}" if reason else ""
        return self.note(at, f"{row.account}: policy check {verdict}{why}")

    def expect_change(
        self, scenario: Scenario, event_id_hex: str, targets: Iterable[str]
    ) -> list[Row]:
        rows = []
        for target in targets:
            row = Row(scenario, target)
            self.rows.append(row)
            self._by_delivery[(event_id_hex, target)] = row
            rows.append(row)
        return rows

    def change_refused(self, rows: Iterable[Row], reason: str) -> None:
        for row in rows:
            row.state = "failed"
            row.outcome = "refused"
            row.detail = reason

    # --- what the queue says ---------------------------------------------------------------

    def update(self, infos: Iterable[DeliveryInfo], at: float, now: float) -> list[Event]:
        """Apply one snapshot (``now``: the queue's wall clock); returns the new events."""
        events = []
        for info in infos:
            row = self._by_delivery.get((info.event_id, info.backend))
            if row is None:
                continue
            text = self._apply(row, info, now)
            if text:
                events.append(self.note(at, text))
        return events

    def _apply(self, row: Row, info: DeliveryInfo, now: float) -> str:
        state = info.state.value
        outcome = info.last_outcome or ""
        if (state, info.attempts, outcome) == (row.state, row.attempts, row.outcome):
            return ""
        new_attempt = info.attempts > row.attempts
        row.state, row.attempts, row.outcome = state, info.attempts, outcome
        row.detail = _ORIGIN.sub("", info.last_error or "")  # the header shows the address
        row.next_attempt_at = info.next_attempt_at if info.attempts else None
        if new_attempt and outcome:
            row.outcomes.append(outcome)
        who = f"{row.account} → {row.target}"
        if info.state is DeliveryState.IN_FLIGHT:
            return f"{who}: in flight (attempt {info.attempts + 1})"
        if info.state is DeliveryState.DELIVERED:
            return f"{who}: delivered ({plural(info.attempts, 'attempt')})"
        if info.state is DeliveryState.FAILED:
            return f"{who}: failed after {plural(info.attempts, 'attempt')}: {row.detail}"
        if info.state is DeliveryState.SUPERSEDED:
            return f"{who}: superseded by a newer change"
        if info.attempts == 0:
            return f"{who}: queued (pending)"
        wait = ""
        if info.next_attempt_at is not None:
            wait = f"; retry in {max(0.0, info.next_attempt_at - now):.1f}s"
        return f"{who}: {outcome} ({row.detail}){wait}"

    # --- questions -------------------------------------------------------------------------

    def rows_of(self, scenario: Scenario) -> list[Row]:
        return [r for r in self.rows if r.scenario == scenario]

    def row(self, scenario: Scenario, target: str) -> Row:
        for r in self.rows:
            if r.scenario == scenario and r.target == target:
                return r
        raise KeyError(f"no row for {scenario.key}/{target}")

    def settled(self, scenario: Scenario | None = None) -> bool:
        rows = self.rows if scenario is None else self.rows_of(scenario)
        return bool(rows) and all(r.done for r in rows)


def path_text(row: Row) -> str:
    """How a row got to its state: its outcomes in order, repeats counted."""
    parts: list[str] = []
    counts: list[int] = []
    for outcome in row.outcomes:
        if parts and parts[-1] == outcome:
            counts[-1] += 1
        else:
            parts.append(outcome)
            counts.append(1)
    pairs = zip(parts, counts, strict=True)
    return " → ".join(p if n == 1 else f"{p} ×{n}" for p, n in pairs)  # noqa: RUF001


__all__ = ["CHECK_TARGET", "SCENARIOS", "Board", "Event", "Row", "path_text"]
