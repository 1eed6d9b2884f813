"""``adsync hook …``: the processes Samba starts, one per event. They start fast.

Only click, the standard library, ``adsync.hooks`` and the blocking ingest client
are imported; the config is read with the hooks' light reader.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adsync.cli.common import config_option

if TYPE_CHECKING:
    from adsync.hooks.settings import HookSettings


def _settings(config_path: Path) -> HookSettings:
    from adsync.hooks.settings import HookConfigError, load_hook_settings

    try:
        return load_hook_settings(config_path)
    except HookConfigError as exc:
        click.echo(f"adsync: {exc}", err=True)
        raise SystemExit(2) from None


@click.group()
def hook() -> None:
    """Hooks that Samba AD DC runs (see `adsync samba setup`)."""


@hook.command("samba-check")
@config_option
def samba_check(config_path: Path) -> None:
    """Samba's `check password script`: password on stdin; exit 0 accept, 1 reject."""
    from adsync.hooks.samba_check import run_check

    settings = _settings(config_path)
    decision = run_check(settings, os.environ, sys.stdin.buffer.read())
    click.echo(f"adsync samba-check: {decision.message}", err=True)
    raise SystemExit(decision.exit_code)


@hook.command("samba-sync")
@config_option
@click.option(
    "--max-wait",
    type=float,
    default=None,
    help="Seconds to wait for the daemon before giving up (exit 75; syncpasswords "
    "re-delivers on its next run). Default: wait as long as syncpasswords runs.",
)
def samba_sync(config_path: Path, max_wait: float | None) -> None:
    """The `samba-tool user syncpasswords --script`: one LDIF object on stdin."""
    from adsync.hooks.samba_sync import Retry, run_sync

    settings = _settings(config_path)
    result = run_sync(settings, sys.stdin.buffer.read(), retry=Retry(max_wait=max_wait))
    sys.stdout.write(result.output())
    sys.stdout.flush()
    raise SystemExit(result.exit_code)
