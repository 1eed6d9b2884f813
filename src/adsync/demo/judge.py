"""Did each scenario end as the demo promises? (pure; the demo exits 1 if one did not)."""

from __future__ import annotations

from dataclasses import dataclass

from adsync.demo.board import CHECK_TARGET, Board, Row, path_text
from adsync.demo.scenarios import (
    DELIVERED,
    OUTAGE,
    POLICY,
    POLICY_REASON,
    SCENARIOS,
    SOFFID,
    UNKNOWN,
    WEBHOOK,
    Scenario,
)


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    ok: bool
    headline: str  # the final state in words: "delivered", "rejected by policy: …"
    details: tuple[str, ...]  # one line per target


def _target_line(row: Row) -> str:
    path = path_text(row) or row.state
    attempts = "attempt" if row.attempts == 1 else "attempts"
    return f"{row.target}: {row.state} after {row.attempts} {attempts} ({path})"


def _judge(board: Board, scenario: Scenario) -> Result:
    rows = board.rows_of(scenario)
    states = {r.target: r for r in rows}
    details = tuple(_target_line(r) for r in rows)
    if scenario == DELIVERED:
        ok = set(states) >= {WEBHOOK, SOFFID} and all(
            r.state == ("accepted" if r.target == CHECK_TARGET else "delivered") for r in rows
        )
        return Result(scenario, ok, "delivered", details)
    if scenario == POLICY:
        check = states.get(CHECK_TARGET)
        ok = (
            check is not None
            and check.state == "rejected"
            and check.detail == POLICY_REASON
            and set(states) == {CHECK_TARGET}
        )
        reason = check.detail if check is not None else "no answer"
        return Result(
            scenario, ok, f"rejected by policy: {reason}", ("never queued: AD refuses it",)
        )
    if scenario == UNKNOWN:
        targets = [r for r in rows if r.target != CHECK_TARGET]
        ok = len(targets) == 2 and all(
            r.state == "failed" and r.outcome == "unknown_user" for r in targets
        )
        return Result(scenario, ok, "unknown user, failed", details)
    if scenario == OUTAGE:
        soffid, webhook = states.get(SOFFID), states.get(WEBHOOK)
        ok = (
            soffid is not None
            and webhook is not None
            and webhook.state == "delivered"
            and soffid.state == "delivered"
            and "unreachable" in soffid.outcomes
        )
        return Result(scenario, ok, "outage, then delivered", details)
    raise ValueError(f"unknown scenario {scenario.key}")


def judge(board: Board) -> list[Result]:
    return [_judge(board, s) for s in SCENARIOS]


__all__ = ["Result", "judge"]
