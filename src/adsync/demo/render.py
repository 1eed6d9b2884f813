"""How the demo shows itself: plain lines (logs, CI, pipes) or a live rich screen (a terminal).

Both get only the ``Board`` (accounts, states, reasons), never a password.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from adsync.demo.board import Board, Event, Row
from adsync.demo.judge import Result

STATE_STYLE = {
    "sending": "dim",
    "asking": "dim",
    "pending": "yellow",
    "in_flight": "cyan",
    "delivered": "green",
    "accepted": "green",
    "failed": "red",
    "rejected": "red",
    "superseded": "dim",
}
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


def _row_cells(row: Row, now: float) -> list[RenderableType]:
    s = row.scenario
    state = Text(row.state.replace("_", " "), style=STATE_STYLE.get(row.state, ""))
    last = last_text(row, now)
    return [
        f"{s.number} {s.title}",
        row.account,
        row.target,
        state,
        str(row.attempts),
        Text(last, overflow="ellipsis", no_wrap=True),
    ]


def board_table(board: Board, now: float) -> Table:
    table = Table(expand=True, pad_edge=False, title=None)
    table.add_column("scenario", no_wrap=True, width=17)
    table.add_column("account", no_wrap=True, width=7)
    table.add_column("target", no_wrap=True, width=12)
    table.add_column("state", no_wrap=True, width=10)
    table.add_column("tries", justify="right", width=5)
    table.add_column("last outcome", ratio=1, no_wrap=True, overflow="ellipsis")
    previous = None
    for row in board.rows:
        if previous is not None and row.scenario != previous:
            table.add_section()
        table.add_row(*_row_cells(row, now))
        previous = row.scenario
    return table


class LivePresenter:
    """A table redrawn in place, with the latest events under it."""

    EVENTS_SHOWN = 9

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        self._board: Board | None = None
        self._header: Sequence[str] = ()

    def line(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            self._console.print(text, markup=False, highlight=False)

    def _screen(self) -> RenderableType:
        assert self._board is not None
        events = self._board.events[-self.EVENTS_SHOWN :]
        log = Text("\n".join(f"{e.at:5.1f}s  {e.text}" for e in events), no_wrap=True)
        log.overflow = "ellipsis"
        return Group(
            Text("\n".join(self._header), style="bold"),
            board_table(self._board, time.time()),
            Panel(log, title="what happens", title_align="left", height=self.EVENTS_SHOWN + 2),
        )

    def start(self, board: Board, header: Sequence[str]) -> None:
        self._board = board
        self._header = header
        self._live = Live(
            self._screen(), console=self._console, auto_refresh=False, transient=False
        )
        self._live.start()

    def event(self, event: Event) -> None:
        pass  # the board holds it; the next refresh shows it

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._screen(), refresh=True)

    def finish(self, results: Sequence[Result], closing: Sequence[str]) -> None:
        self.refresh()
        if self._live is not None:
            self._live.stop()
            self._live = None
        for text in summary_lines(results, details=False):
            style = "green" if text.lstrip().startswith("✓") else ""
            if text.lstrip().startswith("✗"):
                style = "red"
            self._console.print(text, style=style, markup=False, highlight=False)
        for text in closing:
            self._console.print(text, markup=False, highlight=False)


__all__ = [
    "PASSWORD_NOTE",
    "LivePresenter",
    "PlainPresenter",
    "Presenter",
    "board_table",
    "summary_lines",
]
