"""``adsync filter spool replay FILE``: send the changes of an LSA filter spool file (a
set-aside ``adsyncflt.spool.bad-<ms>``, or a copy of the spool) to the running daemon.

The records are opened with the PSK they were sealed under (``--key-file``, default the
config's ``ingest.psk_file``) and sent as CHANGEs with their own event ids, so a change the
daemon already has is acknowledged and not queued twice. Damaged records are skipped and
counted, as the DLL does. Output: counts only, never an account or a password.
"""

from __future__ import annotations

from pathlib import Path

import click

from adsync.cli.common import config_option, connect_daemon, load_or_exit


@click.group("filter")
def filter_group() -> None:
    """The Windows LSA password filter (adsyncflt.dll)."""


@filter_group.group("spool")
def spool() -> None:
    """The filter's spool files."""


@spool.command()
@config_option
@click.argument("spool_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The PSK file the spool was sealed under (default: ingest.psk_file).",
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for ACKs.")
def replay(config_path: Path, spool_file: Path, key_file: Path | None, timeout: float) -> None:
    """Send SPOOL_FILE's changes to the daemon; exit 0 only when every one is stored."""
    from adsync.filterspool import read_spool
    from adsync.ingest.client import IngestError, change_message
    from adsync.ingest.psk import PskError, read_psk

    config = load_or_exit(config_path)
    try:
        key = read_psk(key_file or config.ingest.psk_file)
    except PskError as exc:
        raise click.ClickException(str(exc)) from None
    report = read_spool(spool_file.read_bytes(), key)
    click.echo(
        f"{spool_file}: {len(report.changes)} records open, {report.skipped} damaged "
        f"stretches skipped ({report.skipped_bytes} bytes), torn tail {report.torn_bytes} bytes"
    )
    if not report.changes:
        if report.skipped:
            raise click.ClickException("no record opens with this key: is it the right one?")
        return
    messages = [
        change_message(
            account=c.account,
            password=c.password,
            changed_at_ms=c.changed_at_ms,
            event_id=c.event_id,
            rid=c.rid,
            sequence=c.sequence,
        )
        for c in report.changes
    ]
    try:
        client = connect_daemon(config, timeout)
        with client:
            acks = client.pipeline_changes(messages)
    except (OSError, IngestError) as exc:
        raise click.ClickException(f"cannot reach the daemon: {exc}") from None
    counts = {s: sum(1 for a in acks if int(a.status) == s) for s in (0, 1, 2)}
    click.echo(f"stored {counts[0]}, refused {counts[1]}, busy {counts[2]}")
    if counts[2]:
        raise SystemExit(3)  # busy: run it again later (event ids make that harmless)
    if counts[1]:
        raise SystemExit(1)
