"""The demo's live screen: a rich table redrawn in place (the ``console`` extra).

``adsync demo`` uses it only when rich is installed and stdout is a terminal; otherwise
the plain presenter of ``adsync.demo.render`` prints one line per event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from adsync.extras import require

require("console", "the demo's live screen")

from rich.console import Console, Group, RenderableType  # noqa: E402
from rich.live import Live  # noqa: E402
from rich.panel import Panel  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from adsync.demo.board import Board, Event, Row  # noqa: E402
from adsync.demo.judge import Result  # noqa: E402
from adsync.demo.render import last_text, summary_lines  # noqa: E402

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


__all__ = ["LivePresenter", "board_table"]
