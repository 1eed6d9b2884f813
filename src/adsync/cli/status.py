"""``adsync status`` and ``adsync queue drain``: the running daemon, seen through its ``/status``.

Status comes from the daemon (its loopback listener, ``metrics.listen``), not from
the queue file: only the daemon knows its lanes, what is in flight and the last
error of each backend. ``adsync queue status`` reads the database instead.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adsync.cli.common import age, config_option, echo_json, load_or_exit, plural

if TYPE_CHECKING:
    from adsync.config import Config

UNREACHABLE_EXIT = 3


def status_url(config: Config) -> str:
    listen = config.metrics.listen
    if listen is None:
        raise click.ClickException(
            "metrics.listen is null, so the daemon has no status endpoint; "
            "`adsync queue status` reads the queue database directly"
        )
    return f"http://{listen}/status"


def fetch_status(config: Config, *, timeout: float = 5.0) -> dict[str, Any]:
    """The daemon's ``/status`` JSON; exits 3 when no daemon answers."""
    url = status_url(config)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - http on loopback
            data = json.loads(reply.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        click.echo(
            f"adsync: no daemon answers at {url} ({reason}); is it running with this config?",
            err=True,
        )
        raise SystemExit(UNREACHABLE_EXIT) from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{url} answered something that is not a status object")
    return data


def pending_of(data: dict[str, Any], backend: str | None = None) -> int:
    """Unfinished deliveries of configured backends (a removed backend's rows never drain)."""
    total = 0
    for entry in data.get("backends", []):
        if not entry.get("configured"):
            continue
        if backend is not None and entry.get("name") != backend:
            continue
        total += int(entry.get("pending") or 0)
    return total


def _last_error(entry: dict[str, Any]) -> str:
    err = entry.get("last_error")
    if not err:
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(float(err.get("at", 0))))
    text = f"{err.get('outcome')}: {err.get('error') or ''}".rstrip(": ")
    return f"{when} {text}"


def _state(entry: dict[str, Any]) -> str:
    if not entry.get("configured"):
        return "removed"
    lane = str(entry.get("lane", "-"))
    if lane == "start_failed":
        return "did not start"  # the plugin's start failed: see last error
    return "misconfigured" if entry.get("misconfigured") else lane


COLUMNS = ("BACKEND", "TYPE", "STATE", "IN FLIGHT", "PENDING", "DELIVERED", "FAILED", "OLDEST")
_TEXT_COLUMNS = 3  # left-aligned; the rest are numbers, right-aligned


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _table(rows: list[tuple[str, ...]], width: int) -> list[str]:
    """Columns two spaces apart; the backend name, then the type, give way (cut with …)
    until a line fits; the state and the numbers never do."""
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for column, floor in ((0, 8), (1, 6)):
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        if excess > 0:
            widths[column] = max(floor, widths[column] - excess)
    lines = []
    for row in [COLUMNS, *rows]:
        cells = [
            _fit(cell, widths[i]).ljust(widths[i])
            if i < _TEXT_COLUMNS
            else _fit(cell, widths[i]).rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_status(data: dict[str, Any], width: int = 80) -> str:
    """The status as plain text lines of at most ``width`` characters: no colour, no box
    drawing, so it reads the same in a terminal, through a pipe and in a mail."""
    backends = data.get("backends", [])
    rows: list[tuple[str, ...]] = []
    for entry in backends:
        counts = entry.get("counts") or {}
        rows.append(
            (
                str(entry.get("name")),
                str(entry.get("type") or "-"),
                _state(entry),
                str(entry.get("in_flight", 0)),
                str(entry.get("pending", 0)),
                str(counts.get("delivered", 0)),
                str(counts.get("failed", 0)),
                age(entry.get("oldest_pending_age")),
            )
        )
    lines = [f"adsync daemon pid {data.get('pid')}", ""]
    lines += _table(rows, width) if rows else ["no backend configured"]
    notes: list[str] = []
    for entry in backends:
        name = entry.get("name")
        problem = entry.get("misconfigured")
        if problem:
            notes.append(f"{name} is misconfigured: {problem.get('reason')}")
        last = _last_error(entry)
        if last:
            notes.append(f"{name} last error {last}")
    queue = data.get("queue") or {}
    notes.append(
        f"queue {queue.get('path')}: "
        f"{plural(int(queue.get('pending_deliveries') or 0), 'delivery', 'deliveries')} pending, "
        f"{plural(int(queue.get('changes_holding_password') or 0), 'change')} "
        "still holding a password"
    )
    ingest = data.get("ingest") or {}
    notes.append(f"source connections open: {ingest.get('connections_open', 0)}")
    last_reload = data.get("last_reload")
    if last_reload:
        outcome = "applied" if last_reload.get("ok") else f"refused: {last_reload.get('error')}"
        notes.append(f"last reload ({data.get('reloads')} so far): {outcome}")
    if data.get("restart_needed"):
        notes.append(
            "changed in the file, waiting for a restart: " + ", ".join(data["restart_needed"])
        )
    if any(e.get("lane") == "start_failed" for e in backends):
        notes.append(
            "a backend that did not start keeps its changes queued; fix the cause "
            "(last error), then `adsync reload`"
        )
    if any(not e.get("configured") for e in backends):
        notes.append(
            "rows of backends removed from the config are kept; `adsync queue purge` deletes them"
        )
    lines.append("")
    for note in notes:
        lines += textwrap.wrap(note, width, subsequent_indent="    ", break_on_hyphens=False)
    return "\n".join(lines)


def terminal_width() -> int:
    """``COLUMNS`` or the terminal's width; 80 through a pipe."""
    return shutil.get_terminal_size((80, 24)).columns


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path, as_json: bool) -> None:
    """The running daemon: backends, lanes, queue depth, oldest pending, last error."""
    data = fetch_status(load_or_exit(config_path))
    if as_json:
        echo_json(data)
    else:
        click.echo(format_status(data, terminal_width()))


@click.command()
@config_option
@click.option("--wait", is_flag=True, help="Show progress until nothing is pending.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Give up after this many seconds (exit 1).",
)
@click.option("--backend", help="Only this backend's deliveries.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, hidden=True)
def drain(
    config_path: Path, wait: bool, timeout: float | None, backend: str | None, interval: float
) -> None:
    """Pending deliveries of the configured backends; with --wait, until they reach 0.

    Exits 0 once nothing is pending, 1 on --timeout (or, without --wait, when
    deliveries are still pending).
    """
    config = load_or_exit(config_path)
    if backend is not None and backend not in config.backends:
        raise click.ClickException(f"no backend named {backend!r} is configured")
    pending = pending_of(fetch_status(config), backend)
    if not wait or pending == 0:
        click.echo(f"{plural(pending, 'delivery', 'deliveries')} pending")
        raise SystemExit(0 if pending == 0 else 1)
    start = time.monotonic()
    total = pending
    from adsync.extras import installed

    # Plain progress lines through a pipe (no bar drawing in a log or a mail), or without
    # the `console` extra; the live bar only on a terminal.
    if not installed("console") or not sys.stdout.isatty():
        while pending > 0:
            if timeout is not None and time.monotonic() - start >= timeout:
                break
            time.sleep(interval)
            before, pending = pending, pending_of(fetch_status(config), backend)
            total = max(total, pending)
            if pending != before:  # a line per change, not per poll
                click.echo(f"{plural(pending, 'delivery', 'deliveries')} pending")
        _drain_result(pending, total, time.monotonic() - start)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("draining", total=total)
        while pending > 0:
            if timeout is not None and time.monotonic() - start >= timeout:
                break
            time.sleep(interval)
            pending = pending_of(fetch_status(config), backend)
            total = max(total, int(progress.tasks[0].completed) + pending)  # new work arrived
            progress.update(task, total=total, completed=total - pending)
    _drain_result(pending, total, time.monotonic() - start)


def _drain_result(pending: int, total: int, took: float) -> None:
    if pending:
        click.echo(
            f"timeout after {took:.1f}s: {plural(pending, 'delivery', 'deliveries')} still pending"
        )
        raise SystemExit(1)
    click.echo(f"drained: {plural(total, 'delivery', 'deliveries')} in {took:.1f}s")
