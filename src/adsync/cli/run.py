"""``adsync run``: the daemon in the foreground (systemd or the Windows service wrap it)."""

from __future__ import annotations

from pathlib import Path

import click

from adsync.cli.common import config_option, load_or_exit


@click.command()
@config_option
def run(config_path: Path) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    from adsync.daemon import run as run_daemon
    from adsync.directory.client import DirectoryError
    from adsync.observe.logs import configure_logging
    from adsync.queue.errors import QueueError

    config = load_or_exit(config_path)
    configure_logging(config.logging.level, config.logging.format)
    try:
        run_daemon(config, config_path)
    except QueueError as exc:
        click.echo(f"adsync: cannot open the queue: {exc}", err=True)
        raise SystemExit(2) from None
    except DirectoryError as exc:
        click.echo(f"adsync: {exc}", err=True)
        raise SystemExit(2) from None
