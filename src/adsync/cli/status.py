"""``adsync status`` and ``adsync queue drain``: the running daemon, seen through its ``/status``.

Status comes from the daemon (its loopback listener, ``metrics.listen``), not from
the queue file: only the daemon knows its lanes, what is in flight and the last
error of each backend. ``adsync queue status`` reads the database instead.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adsync.cli.common import age, config_option, echo_json, load_or_exit

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
        return "-"
    when = time.strftime("%H:%M:%S", time.localtime(float(err.get("at", 0))))
    text = f"{err.get('outcome')}: {err.get('error') or ''}".rstrip(": ")
    return f"{when} {text}"


def render_status(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"adsync daemon pid {data.get('pid')}", title_justify="left")
    for column, justify in (
        ("backend", "left"),
        ("type", "left"),
        ("lane", "left"),
        ("in flight", "right"),
        ("pending", "right"),
        ("delivered", "right"),
        ("failed", "right"),
        ("skipped", "right"),
        ("oldest pending", "right"),
        ("last error", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for entry in data.get("backends", []):
        counts = entry.get("counts") or {}
        lane = entry.get("lane", "-")
        if lane == "start_failed":
            lane = "did not start"  # the plugin's start failed: see last error
        if not entry.get("configured"):
            lane = "removed from config"
        table.add_row(
            str(entry.get("name")),
            str(entry.get("type") or "-"),
            lane,
            str(entry.get("in_flight", 0)),
            str(entry.get("pending", 0)),
            str(counts.get("delivered", 0)),
            str(counts.get("failed", 0)),
            str(counts.get("skipped", 0)),
            age(entry.get("oldest_pending_age")),
            _last_error(entry),
        )
    console.print(table)
    queue = data.get("queue") or {}
    console.print(
        f"queue {queue.get('path')}: {queue.get('pending_deliveries')} deliveries pending, "
        f"{queue.get('changes_holding_password')} changes still holding a password"
    )
    ingest = data.get("ingest") or {}
    console.print(f"source connections open: {ingest.get('connections_open', 0)}")
    _render_directory(console, data)
    last = data.get("last_reload")
    if last:
        outcome = "applied" if last.get("ok") else f"refused: {last.get('error')}"
        console.print(f"last reload ({data.get('reloads')} so far): {outcome}")
    if data.get("restart_needed"):
        console.print(
            "changed in the file, waiting for a restart: " + ", ".join(data["restart_needed"])
        )
    if any(e.get("lane") == "start_failed" for e in data.get("backends", [])):
        console.print(
            "a backend that did not start keeps its changes queued; fix the cause "
            "(last error), then `adsync reload`"
        )
    if any(not e.get("configured") for e in data.get("backends", [])):
        console.print(
            "rows of backends removed from the config are kept; `adsync queue purge` deletes them"
        )


def _render_directory(console: Any, data: dict[str, Any]) -> None:
    import time

    directory = data.get("directory")
    if directory:
        line = (
            f"directory {directory.get('url')}: {directory.get('searches', 0)} searches, "
            f"{directory.get('cache_hits', 0)} cache hits, {directory.get('errors', 0)} errors"
        )
        if directory.get("last_error"):
            line += f"; last error {directory['last_error']}"
        console.print(line)
    audit = data.get("audit")
    if audit:
        when = age(max(0.0, time.time() - float(audit.get("at") or 0)))
        if audit.get("error"):
            console.print(f"last audit {when} ago: could not run: {audit['error']}")
        else:
            console.print(
                f"last audit {when} ago: {audit.get('gaps', 0)} uncaptured password changes"
            )
    else:
        console.print("no audit yet (`adsync audit`)")


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path, as_json: bool) -> None:
    """The running daemon: backends, lanes, queue depth, oldest pending, last error."""
    data = fetch_status(load_or_exit(config_path))
    if as_json:
        echo_json(data)
    else:
        render_status(data)


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
        click.echo(f"{pending} deliveries pending")
        raise SystemExit(0 if pending == 0 else 1)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    start = time.monotonic()
    total = pending
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
    took = time.monotonic() - start
    if pending:
        click.echo(f"timeout after {took:.1f}s: {pending} deliveries still pending")
        raise SystemExit(1)
    click.echo(f"drained: {total} deliveries in {took:.1f}s")
