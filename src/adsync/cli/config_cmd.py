"""``adsync config check|show|schema`` (and ``check-config``, the older name of ``check``).

None of them connects anywhere or reads a secret: ``check`` validates a file on a
machine that does not hold the secrets, ``show`` prints the effective config with
secrets as the ``file:``/``env:`` references the file holds, never their values.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import click

from adsync.cli.common import config_option, echo_json, load_or_exit, plural
from adsync.config import ConfigError, config_json_schema, load_config


def _check(config_path: Path) -> None:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        click.echo(f"{plural(len(exc.problems), 'problem')} in {config_path}", err=True)
        raise SystemExit(1) from None
    names = ", ".join(sorted(config.backends))
    click.echo(f"OK: {plural(len(config.backends), 'backend')} ({names})")


@click.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Same as `adsync config check` (kept for scripts that use this name)."""
    _check(config_path)


@click.group("config")
def config() -> None:
    """Check, show and describe the configuration file."""


@config.command("check")
@config_option
def check(config_path: Path) -> None:
    """Validate the configuration file (no connection is made, no secret is read)."""
    _check(config_path)


def effective_config(config_path: Path) -> dict[str, Any]:
    """The loaded config with every default filled in, as plain data.

    Secret fields are ``SecretRef`` strings in the model: what is shown is the
    reference the file holds. Nothing here resolves one.
    """
    config = load_or_exit(config_path)
    data: dict[str, Any] = config.model_dump(mode="json", exclude={"backends"})
    # Each entry by its plugin's own model (the field's declared type is the base).
    data["backends"] = {name: b.model_dump(mode="json") for name, b in config.backends.items()}
    return data


@config.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
def show(config_path: Path, as_json: bool) -> None:
    """Print the effective config: defaults filled in, relative paths made absolute,
    secrets as their file:/env: references (never a value)."""
    data = effective_config(config_path)
    if as_json:
        echo_json(data)
        return
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # the file's order
    out = io.StringIO()
    yaml.dump(data, out)
    click.echo(f"# effective configuration of {config_path} (defaults filled in;")
    click.echo("# secrets are shown as references, never as values)")
    click.echo(out.getvalue(), nl=False)


def schema_text(*, builtin_only: bool = False) -> str:
    """The JSON Schema; ``builtin_only`` is the committed config/adsync.schema.json."""
    from adsync.plugin import builtin_backend_types

    types = builtin_backend_types() if builtin_only else None
    schema = config_json_schema(types)
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@config.command("schema")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option(
    "--builtin-only",
    is_flag=True,
    help="Only adsync's own backend types, not third-party plugins installed beside it "
    "(how config/adsync.schema.json is made).",
)
def schema(output: Path | None, builtin_only: bool) -> None:
    """Print the JSON Schema of adsync.yaml (for editors and CI), with every installed plugin."""
    text = schema_text(builtin_only=builtin_only)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
