"""The shipped example loads, the committed schema is current, and they agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from adsync.cli import main
from adsync.cli.config_cmd import schema_text
from adsync.config import load_config

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
EXAMPLE = CONFIG_DIR / "adsync.example.yaml"
SCHEMA = CONFIG_DIR / "adsync.schema.json"


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert sorted(config.backends) == ["hr-webhook", "idp-scim", "oim", "soffid"]
    assert config.precheck.backends == ("soffid",)
    assert config.ingest.tcp_address == ("127.0.0.1", 17635)


def test_example_comments_every_key() -> None:
    """Each key carries a comment on its line or on the line just above it."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        previous = lines[i - 1].strip() if i else ""
        if "#" not in line and not previous.startswith("#"):
            uncommented.append(f"{i + 1}: {stripped.split(':', 1)[0]}")
    assert uncommented == []


def test_committed_schema_is_the_generated_one() -> None:
    """Regenerate with: adsync config schema --builtin-only --output config/adsync.schema.json

    Built from adsync's own backends only: a third-party plugin installed in the same
    environment does not make the committed file look stale."""
    current = SCHEMA.read_text(encoding="utf-8") == schema_text(builtin_only=True)
    assert current, (
        "stale: run `adsync config schema --builtin-only --output config/adsync.schema.json`"
    )


def test_builtin_types_are_adsyncs_own_entry_points() -> None:
    from adsync.plugin import builtin_backend_types

    assert builtin_backend_types() == sorted(
        ["webhook", "ldap", "soffid", "oim_spml", "domino", "scim"]
    )


def test_example_validates_against_the_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = YAML(typ="safe").load(EXAMPLE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_refuses_what_the_loader_refuses() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    data = YAML(typ="safe").load(EXAMPLE.read_text(encoding="utf-8"))
    bad_tcp = json.loads(json.dumps(data))
    bad_tcp["ingest"]["tcp"] = "0.0.0.0:17635"
    assert not validator.is_valid(bad_tcp)
    bad_key = json.loads(json.dumps(data))
    bad_key["backends"]["hr-webhook"]["bogus"] = 1
    assert not validator.is_valid(bad_key)
    inline = json.loads(json.dumps(data))
    inline["backends"]["hr-webhook"]["secret"] = "hunter2"
    assert not validator.is_valid(inline)
    unknown_type = json.loads(json.dumps(data))
    unknown_type["backends"]["hr-webhook"]["type"] = "nope"
    assert not validator.is_valid(unknown_type)


def test_schema_covers_every_section_and_installed_plugin() -> None:
    schema = json.loads(schema_text())
    assert set(schema["properties"]) == {
        "ingest",
        "queue",
        "keys",
        "precheck",
        "logging",
        "metrics",
        "dispatch",
        "samba",
        "backends",
    }
    assert schema["additionalProperties"] is False
    entry = next(iter(schema["properties"]["backends"]["patternProperties"].values()))
    assert "webhook" in entry["discriminator"]["mapping"]


def test_cli_schema_output_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(main, ["config", "schema", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == schema_text()
    result = CliRunner().invoke(main, ["config", "schema", "--builtin-only", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == SCHEMA.read_text(encoding="utf-8")


def test_cli_check_config_ok() -> None:
    result = CliRunner().invoke(main, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK: 4 backends (hr-webhook, idp-scim, oim, soffid)"


def test_cli_check_config_errors_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "adsync.yaml"
    path.write_text(
        "logging:\n  level: loud\nmetrics:\n  listen: 0.0.0.0:1\n"
        "backends:\n  hr: {type: webhook, url: 'https://hr.example.com/', secret: 'env:HR'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: logging.level:" in result.output
    assert f"{path}:4: metrics.listen:" in result.output
    assert "2 problems" in result.output


def test_cli_check_config_uses_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text(
        "backends:\n  hr: {type: webhook, url: 'https://hr.example.com/', secret: 'env:HR'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ADSYNC_CONFIG", str(path))
    result = CliRunner().invoke(main, ["check-config"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK: 1 backend (hr)"
