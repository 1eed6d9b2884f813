"""``adsync demo``: watch the main job on a throw-away setup (the README's first command)."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option(
    "--non-interactive",
    is_flag=True,
    help="Plain lines, no live redraw (automatic when stdout is not a terminal or "
    "the 'console' extra is not installed).",
)
@click.option(
    "--keep", is_flag=True, help="Keep the temp dir (queue, key, log) and print its path."
)
def demo(non_interactive: bool, keep: bool) -> None:
    """Run the daemon on a temp config with local fake targets and follow a few changes.

    One change is delivered, one password is rejected by a policy check, one goes to
    an unknown user, one waits out a target outage. Nothing outside a temp dir is
    touched; passwords are never shown. Exits 0 when every scenario ended as expected.
    """
    import asyncio

    from adsync.demo.render import PlainPresenter, Presenter
    from adsync.demo.runner import run_demo
    from adsync.extras import installed

    # The live screen needs the `console` extra (rich); without it, plain lines.
    interactive = not non_interactive and sys.stdout.isatty() and installed("console")
    presenter: Presenter
    if interactive:
        from rich.console import Console

        from adsync.demo.live import LivePresenter

        presenter = LivePresenter(Console())
    else:
        presenter = PlainPresenter(sys.stdout)
    outcome = asyncio.run(run_demo(presenter, keep=keep, pause=0.8 if interactive else 0.2))
    raise SystemExit(0 if outcome.ok else 1)
