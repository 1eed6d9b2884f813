"""``adsync audit``: password changes made on this DC that this daemon never captured.

Exit 0: none; 1: gaps found (listed); 2: the audit could not run (no ``directory:``,
the directory or the queue did not open). The summary (time, window, count; no
account names) is kept beside the queue for ``adsync status`` and the
``adsync_audit_gaps`` metric.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from adsync.cli.common import config_option, echo_json, load_or_exit, plural
from adsync.duration import parse_duration


def _since(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("audit")
@config_option
@click.option(
    "--since", "window", default="7d", show_default=True, callback=_since,
    help="How far back to look (at most the 35-day capture history).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit(config_path: Path, window: float, as_json: bool) -> None:
    """List accounts whose password changed on this DC with no capture by adsync."""
    from adsync.directory.audit import HISTORY_RETENTION, write_state

    config = load_or_exit(config_path)
    if config.directory is None:
        click.echo("adsync audit needs the directory: section (docs/configuration.md)", err=True)
        raise SystemExit(2)
    window = min(window, HISTORY_RETENTION)
    now = time.time()
    since = now - window
    try:
        gaps = asyncio.run(_run(config, since))
    except Exception as exc:  # the directory or queue did not open: say which, exit 2
        reason = str(exc) or type(exc).__name__
        write_state(Path(config.queue.path), at=now, since=since, gaps=0, error=reason)
        click.echo(f"audit failed: {reason}", err=True)
        raise SystemExit(2) from None
    write_state(Path(config.queue.path), at=now, since=since, gaps=len(gaps), error=None)
    if as_json:
        echo_json(
            {
                "since": since,
                "gaps": [
                    {"account": g.account, "version": g.version, "changed_at": g.changed_at}
                    for g in gaps
                ],
            }
        )
    else:
        for g in gaps:
            when = (
                datetime.fromtimestamp(g.changed_at, UTC).isoformat(timespec="seconds")
                if g.changed_at is not None
                else "?"
            )
            click.echo(f"NOT CAPTURED  {g.account}  password version {g.version}  set {when}")
        start = f"{datetime.fromtimestamp(since, UTC):%Y-%m-%d %H:%M}Z"
        click.echo(f"{plural(len(gaps), 'uncaptured password change')} on this DC since {start}")
    if gaps:
        raise SystemExit(1)


async def _run(config: Any, since: float) -> list[Any]:
    from adsync.cli.queue_cmd import open_queue
    from adsync.directory.audit import find_gaps
    from adsync.directory.client import DirectoryClient, DirectoryError
    from adsync.directory.metadata import SECONDS_1601_TO_1970
    from adsync.queue import sql

    client = DirectoryClient(config.directory)
    try:
        own = await client.invocation_id()
        if own is None:
            raise DirectoryError("this DC's invocationId is not readable")
        # pwdLastSet is written with the change: a superset of the changes in the window.
        filetime = int((since - 3600 + SECONDS_1601_TO_1970) * 10_000_000)
        changed = await client.changed_since(filetime)
    finally:
        await client.close()
    async with open_queue(config) as queue:
        captures = await queue.read(lambda conn: sql.captures_since(conn, since - 86400))
        sealer = queue.sealer
        return find_gaps(changed, captures, own, since, lambda a: sealer.account_hash("", a))
