"""``adsync service install|remove|start|stop``: the Windows service (pywin32)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adsync.cli.common import config_option, load_or_exit

if TYPE_CHECKING:
    from adsync.winservice.api import Win32


def _win32() -> Win32:
    from adsync.winservice.api import Win32Unavailable, load

    try:
        return load()
    except Win32Unavailable as exc:
        raise click.ClickException(
            f"{exc}. `adsync service` manages the Windows service; on Linux use systemd "
            "(see docs/operations.md)"
        ) from None


def _do(action: str, fn: Callable[..., None], *args: Any) -> None:
    from adsync.winservice.control import ServiceError

    try:
        fn(*args)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(action)


@click.group()
def service() -> None:
    """Manage the adsync Windows service (run from an elevated prompt)."""


@service.command()
@config_option
def install(config_path: Path) -> None:
    """Install the service (automatic start) running the daemon on this config."""
    from adsync.winservice import control

    load_or_exit(config_path)  # a broken config is refused now, not at the next boot
    _do(
        f"installed service adsync (config {config_path.resolve()}); start it with: "
        "adsync service start",
        control.install,
        _win32(),
        config_path,
    )


@service.command()
def remove() -> None:
    """Stop and remove the service (the queue and keys stay where they are)."""
    from adsync.winservice import control

    _do("removed service adsync", control.remove, _win32())


@service.command()
def start() -> None:
    """Start the service and wait until it runs."""
    from adsync.winservice import control

    _do("service adsync is running", control.start, _win32())


@service.command()
def stop() -> None:
    """Stop the service (in-flight deliveries finish first) and wait until it stopped."""
    from adsync.winservice import control

    _do("service adsync stopped", control.stop, _win32())
