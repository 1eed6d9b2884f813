"""``adsync check-config`` and ``adsync config schema``: validate without connecting or
reading secrets, and export the JSON Schema for editors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adsync.config import ConfigError, config_json_schema, default_config_path, load_config

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=default_config_path,
    show_default="/etc/adsync/adsync.yaml or $ADSYNC_CONFIG",
    help="The YAML configuration file.",
)


@click.command("check-config")
@_config_option
def check_config(config_path: Path) -> None:
    """Validate the configuration file (no connection is made, no secret is read)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        count = len(exc.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} in {config_path}", err=True)
        raise SystemExit(1) from None
    names = ", ".join(sorted(config.backends))
    count = len(config.backends)
    click.echo(f"OK: {count} backend{'s' if count != 1 else ''} ({names})")
    if config.directory is None:
        click.echo(
            "note: no directory: section: account globs and the built-in exclusions apply; "
            "group/OU scope, the stale-password guard and adsync audit need it"
        )


def schema_text() -> str:
    """The JSON Schema as committed in config/adsync.schema.json."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@click.group("config")
def config() -> None:
    """Configuration tools."""


@config.command("schema")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
def schema(output: Path | None) -> None:
    """Print the JSON Schema of adsync.yaml (for editors and CI)."""
    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
