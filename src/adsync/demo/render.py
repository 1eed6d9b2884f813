"""How the demo shows itself: plain lines (logs, CI, pipes); the live screen is ``demo.live``.

Both get only the ``Board`` (accounts, states, reasons), never a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Protocol

from adsync.demo.board import Board, Event, Row
from adsync.demo.judge import Result

PASSWORD_NOTE = "(password hidden)"  # noqa: S105 - a label, not a password


class Presenter(Protocol):
    def start(self, board: Board, header: Sequence[str]) -> None: ...
    def event(self, event: Event) -> None: ...
    def refresh(self) -> None: ...
    def finish(self, results: Sequence[Result], closing: Sequence[str]) -> None: ...
    def line(self, text: str) -> None: ...


def summary_lines(results: Sequence[Result], *, details: bool) -> list[str]:
    if not results:
        return ["Result: the demo stopped before its scenarios ended"]
    lines = ["Result:"]
    for r in results:
        mark = "✓" if r.ok else "✗"
        s = r.scenario
        lines.append(f"  {mark} {s.number} {s.title} ({s.account}): {r.headline}")
        if details or not r.ok:
            lines.extend(f"        {d}" for d in r.details)
    return lines


class PlainPresenter:
    """One line per event, no redraw."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def start(self, board: Board, header: Sequence[str]) -> None:
        for text in header:
            self.line(text)

    def event(self, event: Event) -> None:
        self.line(f"{event.at:6.1f}s  {event.text}")

    def refresh(self) -> None:
        pass

    def finish(self, results: Sequence[Result], closing: Sequence[str]) -> None:
        for text in summary_lines(results, details=True):
            self.line(text)
        for text in closing:
            self.line(text)


def last_text(row: Row, now: float) -> str:
    detail = row.detail
    text = row.outcome if not detail or detail == row.outcome else f"{row.outcome}: {detail}"
    if row.state == "pending" and row.next_attempt_at is not None:
        text = f"retry in {max(0.0, row.next_attempt_at - now):.1f}s; {text}"
    return text


__all__ = [
    "PASSWORD_NOTE",
    "PlainPresenter",
    "Presenter",
    "summary_lines",
]
