"""``adsync service install|remove|start|stop|unit``: the service, on Windows (the service
control manager, pywin32) and on Linux (a hardened systemd unit)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adsync.cli.common import config_option, load_or_exit

if TYPE_CHECKING:
    from adsync.winservice.api import Win32


def _windows() -> bool:
    """The service control manager when pywin32 is there (always on Windows), else systemd."""
    if sys.platform == "win32":
        return True
    from adsync.winservice.api import Win32Unavailable, load

    try:
        load()
    except Win32Unavailable:
        return False
    return True


def _win32() -> Win32:
    from adsync.winservice.api import Win32Unavailable, load

    try:
        return load()
    except Win32Unavailable as exc:
        raise click.ClickException(f"{exc}. `adsync service` needs pywin32 on Windows") from None


def _do(action: str, fn: Callable[..., None], *args: Any) -> None:
    from adsync.service.systemd import InstallError
    from adsync.winservice.control import ServiceError

    try:
        fn(*args)
    except (ServiceError, InstallError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(action)


def _systemctl(*args: str) -> Callable[[], None]:
    from adsync.service.systemd import RealHost

    return lambda: RealHost().run(["systemctl", *args])


@click.group()
def service() -> None:
    """Manage the adsync service (Windows: elevated prompt; Linux: root, systemd)."""


@service.command()
@config_option
def install(config_path: Path) -> None:
    """Install the service (automatic start) running the daemon on this config.

    On Linux: the system user `adsync`, ownership of /etc/adsync and the key files, and
    /etc/systemd/system/adsync.service (hardened), enabled; not started.
    """
    config = load_or_exit(config_path)  # a broken config is refused now, not at the next boot
    if _windows():
        from adsync.winservice import control

        _do(
            f"installed service adsync (config {config_path.resolve()}); start it with: "
            "adsync service start",
            control.install,
            _win32(),
            config_path,
        )
        return
    from adsync.service.systemd import InstallError, RealHost
    from adsync.service.systemd import install as install_unit

    try:
        plan = install_unit(RealHost(), config, config_path, sys.executable)
    except InstallError as exc:
        raise click.ClickException(str(exc)) from None
    for line in plan.done:
        click.echo(line)
    click.echo("installed service adsync; start it with: adsync service start")
    click.echo("then check it with: adsync doctor")


@service.command()
@config_option
def unit(config_path: Path) -> None:
    """Print the systemd unit `install` would write for this config (Linux)."""
    from adsync.service.systemd import render_unit

    config = load_or_exit(config_path)
    click.echo(render_unit(config, config_path.absolute(), sys.executable), nl=False)


@service.command()
def remove() -> None:
    """Stop and remove the service (the queue and keys stay where they are)."""
    if _windows():
        from adsync.winservice import control

        _do("removed service adsync", control.remove, _win32())
        return
    from adsync.service.systemd import RealHost
    from adsync.service.systemd import remove as remove_unit

    _do("removed service adsync", remove_unit, RealHost())


@service.command()
def start() -> None:
    """Start the service and wait until it runs."""
    if _windows():
        from adsync.winservice import control

        _do("service adsync is running", control.start, _win32())
        return
    _do("service adsync is running", _systemctl("start", "adsync.service"))


@service.command()
def stop() -> None:
    """Stop the service (in-flight deliveries finish first) and wait until it stopped."""
    if _windows():
        from adsync.winservice import control

        _do("service adsync stopped", control.stop, _win32())
        return
    _do("service adsync stopped", _systemctl("stop", "adsync.service"))
