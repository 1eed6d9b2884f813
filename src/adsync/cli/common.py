"""Options and helpers shared by the subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adsync.wording import plural as plural  # the commands' one plural helper

if TYPE_CHECKING:
    from adsync.config import Config
    from adsync.ingest.client import IngestClient


def default_config_path() -> Path:
    from adsync.config import default_config_path as configured_default

    return configured_default()


CONFIG_HELP = (
    "The YAML configuration file. Default: $ADSYNC_CONFIG when set, else "
    "/etc/adsync/adsync.yaml (Windows: %ProgramData%\\adsync\\adsync.yaml)."
)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=default_config_path,
    show_default=False,
    metavar="FILE",
    help=CONFIG_HELP,
)
"""The one ``--config`` option: every command that reads the config file uses this."""


def load_or_exit(path: Path) -> Config:
    """Load the config, or print its errors (file:line: key: message) and exit 1."""
    from adsync.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def age(seconds: float | None) -> str:
    """A duration as operators read it in a table: ``42s``, ``3.5m``, ``1.2h``, ``2.0d``."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def connect_daemon(config: Config, timeout: float) -> IngestClient:
    """A client on the daemon's ingest socket as the config says (Unix first, else TCP+PSK)."""
    from adsync.ingest.client import IngestClient

    ingest = config.ingest
    if ingest.unix_socket is not None:
        return IngestClient.unix(ingest.unix_socket, timeout=timeout)
    if ingest.tcp_address is not None:
        from adsync.ingest.psk import load_or_create_psk

        host, port = ingest.tcp_address
        return IngestClient.tcp(host, port, load_or_create_psk(ingest.psk_file), timeout=timeout)
    raise click.ClickException("the config enables neither ingest.unix_socket nor ingest.tcp")
