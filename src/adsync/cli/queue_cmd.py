"""``adsync queue …``: look at and act on the queue, beside a running daemon or without one.

The queue is opened in operator mode (no lock, no crash recovery, no key
creation). Nothing here prints a password: the queue cannot give one out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from adsync.cli.common import age, config_option, echo_json, load_or_exit, plural

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from adsync.config import Config
    from adsync.queue.store import Queue

T = TypeVar("T")

STATES = ("pending", "in_flight", "delivered", "failed", "superseded")


@asynccontextmanager
async def open_queue(config: Config) -> AsyncIterator[Queue]:
    from adsync.queue.keys import key_provider_from_config
    from adsync.queue.store import Queue

    queue = await Queue.open(
        config.queue.path,
        key_provider_from_config(config.keys),
        list(config.backends),
        max_pending=config.queue.max_pending,
        operator=True,
    )
    try:
        yield queue
    finally:
        await queue.close()


def with_queue(config_path: Path, action: Callable[[Queue], Awaitable[T]]) -> T:
    """Run ``action`` on the operator's view of the queue; queue errors exit 2."""
    from adsync.queue.errors import QueueError

    config = load_or_exit(config_path)

    async def go() -> T:
        async with open_queue(config) as queue:
            return await action(queue)

    try:
        return asyncio.run(go())
    except QueueError as exc:
        raise click.ClickException(str(exc)) from None


def stamp(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


@click.group()
def queue() -> None:
    """Inspect the queue; retry or purge failed deliveries."""


@queue.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(config_path: Path, as_json: bool) -> None:
    """Deliveries per backend and state, and the age of the oldest pending one."""
    result = with_queue(config_path, lambda q: q.status())
    if as_json:
        echo_json(asdict(result))
        return
    click.echo(f"{'backend':20} " + " ".join(f"{s:>10}" for s in STATES))
    for backend, counts in sorted(result.counts.items()):
        click.echo(f"{backend:20} " + " ".join(f"{counts.get(s, 0):>10}" for s in STATES))
    click.echo(f"changes still holding a password: {result.pending_changes}")
    click.echo(f"oldest pending delivery: {age(result.oldest_pending_age)}")


@queue.command("list")
@config_option
@click.option("--backend", help="Only this backend.")
@click.option("--state", type=click.Choice(STATES), help="Only rows in this state.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(
    config_path: Path, backend: str | None, state: str | None, limit: int, as_json: bool
) -> None:
    """Delivery rows, newest first: who, when, which backend, why. Never a password."""
    rows = with_queue(config_path, lambda q: q.list_deliveries(backend, state, limit))
    if as_json:
        echo_json([asdict(r) for r in rows])
        return
    click.echo(
        f"{'event id':32}  {'backend':14} {'state':10} {'account':20} {'tries':>5}  "
        f"{'received':19}  last outcome / error"
    )
    for r in rows:
        why = " ".join(x for x in (r.last_outcome, r.last_error) if x) or "-"
        click.echo(
            f"{r.event_id:32}  {r.backend:14} {r.state.value:10} {r.account:20} "
            f"{r.attempts:>5}  {stamp(r.received_at):19}  {why}"
        )


def _event_ids(values: tuple[str, ...]) -> list[str] | None:
    return list(values) or None


@queue.command()
@config_option
@click.option("--backend", help="Only this backend's failed rows.")
@click.argument("event_ids", nargs=-1)
def retry(config_path: Path, backend: str | None, event_ids: tuple[str, ...]) -> None:
    """Re-queue failed deliveries whose change still holds its password.

    A password is erased once no backend needs it, so a delivery that failed
    after that cannot be retried: the user must change the password again.
    """
    n = with_queue(config_path, lambda q: q.retry_failed(backend, _event_ids(event_ids)))
    click.echo(f"re-queued {plural(n, 'failed delivery', 'failed deliveries')}")
    if n == 0:
        click.echo(
            "(only rows whose password is still held can be retried; "
            "for the others the user must change the password again)"
        )


@queue.command()
@config_option
@click.option("--backend", help="Only this backend's failed rows.")
@click.option("--older-than", help="Only rows failed longer ago than this (e.g. 7d).")
@click.option(
    "--removed-backend",
    metavar="NAME",
    help="Delete ALL rows (pending ones too) of a backend removed from the config.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("event_ids", nargs=-1)
def purge(
    config_path: Path,
    backend: str | None,
    older_than: str | None,
    removed_backend: str | None,
    yes: bool,
    event_ids: tuple[str, ...],
) -> None:
    """Delete failed delivery rows, or every row of a removed backend.

    A backend removed from the config keeps its pending rows (a reload never
    deletes them); --removed-backend is the deliberate way to drop them.
    """
    from adsync.duration import parse_duration

    try:
        cutoff = None if older_than is None else parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    if removed_backend is not None and (backend or older_than or event_ids):
        raise click.UsageError("--removed-backend goes alone")
    if not yes:
        what = f"every row of {removed_backend}" if removed_backend else "these failed rows"
        click.confirm(f"Delete {what} for good?", abort=True)

    async def action(q: Queue) -> Any:
        if removed_backend is not None:
            return await q.purge_backend(removed_backend)
        return await q.purge_failed(backend, _event_ids(event_ids), cutoff)

    n = with_queue(config_path, action)
    what = (
        plural(n, "row") if removed_backend else plural(n, "failed delivery", "failed deliveries")
    )
    click.echo(f"purged {what}")


@queue.command("accept-loss")
@config_option
def accept_loss(config_path: Path) -> None:
    """Let the daemon start on a queue that lost acknowledged changes (daemon stopped).

    The daemon refuses a database that holds fewer changes than it acknowledged
    (its -wal deleted, or an older copy restored). This records that the database
    is the truth now; the missing changes are not recovered (docs/operations.md).
    """
    from adsync.queue.errors import QueueError
    from adsync.queue.store import Queue

    config = load_or_exit(config_path)
    db = Path(config.queue.path)
    try:
        before, stored = asyncio.run(Queue.accept_loss(db))
    except QueueError as exc:
        raise click.ClickException(str(exc)) from None
    if before is None or before <= stored:
        click.echo(f"{db.name} holds every change it acknowledged ({stored}); nothing was lost")
        return
    click.echo(
        f"{db.name}: {before - stored} acknowledged changes are missing "
        f"({before} acknowledged, {stored} stored); loss accepted, the daemon will start. "
        "Their passwords reach no target: see docs/operations.md for what to do next."
    )


# `adsync queue drain` reads the running daemon's /status; it lives with `adsync status`.
from adsync.cli.status import drain  # noqa: E402

queue.add_command(drain)
