"""The demo's board and judge: queue snapshots → rows, events and a verdict (no I/O)."""

from __future__ import annotations

from adsync.demo.board import CHECK_TARGET, Board, path_text
from adsync.demo.judge import judge
from adsync.demo.render import last_text
from adsync.demo.scenarios import (
    DELIVERED,
    OUTAGE,
    POLICY,
    POLICY_REASON,
    SOFFID,
    UNKNOWN,
    WEBHOOK,
)
from adsync.queue.models import DeliveryInfo, DeliveryState

EID = "00" * 16


def info(
    state: DeliveryState,
    attempts: int,
    outcome: str | None = None,
    error: str | None = None,
    next_at: float | None = None,
    *,
    event_id: str = EID,
    backend: str = SOFFID,
) -> DeliveryInfo:
    return DeliveryInfo(
        event_id=event_id,
        backend=backend,
        state=state,
        account="carol",
        domain="DEMO",
        attempts=attempts,
        rejections=0,
        received_at=1000.0,
        updated_at=1000.0,
        next_attempt_at=next_at,
        expires_at=2000.0,
        last_outcome=outcome,
        last_error=error,
        password_held=True,
    )


def test_snapshots_become_events_and_the_path_counts_repeats() -> None:
    board = Board()
    (row,) = board.expect_change(OUTAGE, EID, [SOFFID])
    steps = [
        info(DeliveryState.PENDING, 0),
        info(DeliveryState.PENDING, 1, "unreachable", "http://127.0.0.1:4711: refused", 1001.5),
        info(DeliveryState.PENDING, 1, "unreachable", "http://127.0.0.1:4711: refused", 1001.5),
        info(DeliveryState.IN_FLIGHT, 1, "unreachable", "http://127.0.0.1:4711: refused"),
        info(DeliveryState.PENDING, 2, "unreachable", "http://127.0.0.1:4711: refused", 1003.0),
        info(DeliveryState.DELIVERED, 3, "delivered", "queued by Soffid"),
    ]
    texts = [[e.text for e in board.update([s], at=1.0, now=1001.0)] for s in steps]
    assert texts == [
        ["carol → soffid: queued (pending)"],
        ["carol → soffid: unreachable (refused); retry in 0.5s"],
        [],  # nothing changed: no event
        ["carol → soffid: in flight (attempt 2)"],
        ["carol → soffid: unreachable (refused); retry in 2.0s"],
        ["carol → soffid: delivered (3 attempts)"],
    ]
    assert row.state == "delivered" and row.attempts == 3
    assert path_text(row) == "unreachable ×2 → delivered"  # noqa: RUF001
    assert board.settled(OUTAGE)


def test_a_missed_attempt_still_counts_and_other_events_are_ignored() -> None:
    board = Board()
    (row,) = board.expect_change(UNKNOWN, EID, [WEBHOOK])
    stranger = info(DeliveryState.DELIVERED, 1, "delivered", event_id="ff" * 16)
    ghost = info(DeliveryState.PENDING, 3, "unknown_user", "HTTP 404", backend=WEBHOOK)
    events = board.update([stranger, ghost], 0.0, 0.0)
    assert [e.text for e in events] == ["ghost → hr-webhook: unknown_user (HTTP 404)"]
    assert row.attempts == 3 and not board.settled(UNKNOWN)


def test_pending_row_shows_time_to_retry() -> None:
    board = Board()
    (row,) = board.expect_change(OUTAGE, EID, [SOFFID])
    board.update([info(DeliveryState.PENDING, 1, "unreachable", "refused", 1010.0)], 0.0, 1000.0)
    assert last_text(row, now=1007.5) == "retry in 2.5s; unreachable: refused"


def full_story() -> Board:
    board = Board()
    board.check_answered(board.add_check(DELIVERED), "accepted", "", 0.0)
    for target in (WEBHOOK, SOFFID):
        r = board.expect_change(DELIVERED, "01" * 16, [target])[0]
        r.state, r.attempts, r.outcomes = "delivered", 1, ["delivered"]
    board.check_answered(board.add_check(POLICY), "rejected", POLICY_REASON, 0.0)
    for target in (WEBHOOK, SOFFID):
        r = board.expect_change(UNKNOWN, "02" * 16, [target])[0]
        r.state, r.attempts, r.outcome = "failed", 4, "unknown_user"
    for target, outcomes in ((WEBHOOK, ["delivered"]), (SOFFID, ["unreachable", "delivered"])):
        r = board.expect_change(OUTAGE, "03" * 16, [target])[0]
        r.state, r.attempts, r.outcomes = "delivered", len(outcomes), outcomes
    return board


def test_judge_accepts_the_story_as_told() -> None:
    results = judge(full_story())
    assert [(r.scenario.key, r.ok) for r in results] == [
        ("delivered", True),
        ("policy", True),
        ("unknown", True),
        ("outage", True),
    ]
    assert results[1].headline == f"rejected by policy: {POLICY_REASON}"


def test_judge_flags_each_scenario_that_ended_otherwise() -> None:
    board = full_story()
    board.row(DELIVERED, SOFFID).state = "failed"
    board.row(POLICY, CHECK_TARGET).state = "accepted"
    board.row(UNKNOWN, WEBHOOK).outcome = "failed"
    board.row(OUTAGE, SOFFID).outcomes = ["delivered"]  # no outage was seen
    assert [r.ok for r in judge(board)] == [False, False, False, False]
