"""``adsync run``: the daemon in the foreground (systemd or the Windows service wrap it)."""

from __future__ import annotations

from pathlib import Path

import click

from adsync.cli.common import config_option, load_or_exit


@click.command()
@config_option
def run(config_path: Path) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    import structlog

    from adsync.daemon import run as run_daemon
    from adsync.observe.logs import configure_logging
    from adsync.startup import check_private_files, explain, secret_problems

    config = load_or_exit(config_path)
    configure_logging(config.logging.level, config.logging.format)
    log = structlog.get_logger("adsync.daemon")
    try:
        for warning in check_private_files(config, config_path):
            log.warning("config_file_not_private", path=str(warning.path), fix=warning.chmod)
            click.echo(f"adsync: warning: {warning}", err=True)
        for backend, where, reason in secret_problems(config, config_path):
            log.error("backend_secret_unavailable", backend=backend, where=where, error=reason)
            click.echo(
                f"adsync: {where}: {reason} (backend {backend} does not start; its changes "
                "wait in the queue until `adsync reload` after the fix)",
                err=True,
            )
        run_daemon(config, config_path)
    except Exception as exc:
        failure = explain(exc, config)
        if failure is None:
            raise
        log.error(failure.event, error=failure.message, exit_code=failure.exit_code)
        click.echo(f"adsync: {failure.message}", err=True)
        raise SystemExit(failure.exit_code) from None
