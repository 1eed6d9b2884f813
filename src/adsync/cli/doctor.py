"""``adsync doctor``: check an installation before a password is lost (read-only)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from adsync.cli.common import config_option, echo_json, plural


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--smb-conf",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/samba/smb.conf"),
    show_default=True,
    help="The Samba AD DC's smb.conf (Linux; skipped when absent).",
)
def doctor(config_path: Path, as_json: bool, smb_conf: Path) -> None:
    """Check secrets, file modes, ports, the queue and its key, the daemon, every target,
    the Samba hooks or the Windows filter, and the clock. Changes nothing.

    One line per check (✓ ok, ✗ failed with a fix, - not applicable); exit 1 when any
    check failed.
    """
    from adsync.config import ConfigError, load_config
    from adsync.doctor import Context, Result, render_json, render_lines, run_all
    from adsync.doctor.local import service_ids

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        results = [
            Result.fail(
                "config",
                f"{plural(len(exc.problems), 'problem')}: {exc.problems[0].message}",
                f"adsync config check --config {config_path}",
            )
        ]
    else:
        count = len(config.backends)
        results = [
            Result.ok("config", f"{config_path} loads ({count} backend{'s' * (count != 1)})"),
            *run_all(
                Context(
                    config=config,
                    config_path=config_path,
                    smb_conf=smb_conf,
                    service_ids=service_ids(),
                    system_root=Path(os.environ.get("SystemRoot", "C:/Windows")),
                    program_data=Path(os.environ.get("ProgramData", "C:/ProgramData")),
                )
            ),
        ]
    if as_json:
        echo_json(render_json(results))
    else:
        for line in render_lines(results):
            click.echo(line)
    raise SystemExit(0 if render_json(results)["ok"] else 1)
