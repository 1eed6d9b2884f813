"""``adsync hook …``: the Samba hooks through the CLI (the same code as the hook scripts).

The hook scripts ``adsync samba setup`` writes call ``adsync.hooks.main`` with
``python -I -S`` and start several times faster; this command is for running a
hook by hand and for smb.conf lines written by earlier versions.
"""

from __future__ import annotations

import click

_PASS_THROUGH = {"ignore_unknown_options": True, "help_option_names": []}


@click.group()
def hook() -> None:
    """Hooks that Samba AD DC runs (see `adsync samba setup`)."""


def _run(command: str, args: tuple[str, ...]) -> None:
    from adsync.hooks.main import main

    raise SystemExit(main([command, *args]))


@hook.command("samba-check", context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def samba_check(args: tuple[str, ...]) -> None:
    """Samba's `check password script`: --config PATH [--on-undecided accept|reject]
    [--domain NAME] [--backoff SECONDS]; password on stdin; exit 0 accept, 1 reject."""
    _run("samba-check", args)


@hook.command("samba-sync", context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def samba_sync(args: tuple[str, ...]) -> None:
    """The `samba-tool user syncpasswords --script`: --config PATH [--domain NAME]
    [--max-wait SECONDS]; one LDIF object on stdin."""
    _run("samba-sync", args)
