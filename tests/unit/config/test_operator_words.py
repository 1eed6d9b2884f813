"""Config errors in the operator's words (issue 17 item 7): a suggestion for a misspelt key,
YAML's words instead of pydantic's types, a tab named with its line and column, durations
with a unit (the loader and the JSON Schema agree), and at least one backend."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from adsync.config import ConfigError, ConfigProblem, load_config
from adsync.plugin import BackoffConfig

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
HOOK = """\
backends:
  hr:
    type: webhook
    url: https://hr.example.com/hook
    secret: env:HR_SECRET
"""
SECRET = "S3cret-Pa55word!"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "adsync.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def only(path: Path) -> ConfigProblem:
    found = problems(path)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


# --- did you mean -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key", "suggestion"),
    [
        ("    concurency: 8\n", "backends.hr.concurency", "concurrency"),
        ("    Timeout: 5s\n", "backends.hr.Timeout", "timeout"),
        ("    retry:\n      backof: {initial: 1s}\n", "backends.hr.retry.backof", "backoff"),
        ("    tls:\n      ca_flie: /ca.pem\n", "backends.hr.tls.ca_flie", "ca_file"),
        ("    tsl:\n      verify: true\n", "backends.hr.tsl", "tls"),
        ("    check_ulr: https://hr.example.com/check\n", "backends.hr.check_ulr", "check_url"),
        ("ingest:\n  max_conections: 3\n", "ingest.max_conections", "max_connections"),
        ("logging:\n  levle: info\n", "logging.levle", "level"),
        ("qeueu:\n  path: q.db\n", "qeueu", "queue"),
    ],
)
def test_an_unknown_key_names_the_closest_key_of_its_section(
    tmp_path: Path, extra: str, key: str, suggestion: str
) -> None:
    problem = only(write(tmp_path, HOOK + extra))
    assert problem.key == key
    assert problem.message == f"unknown key; did you mean `{suggestion}`?"


def test_a_key_close_to_nothing_gets_the_sections_keys_not_a_guess(tmp_path: Path) -> None:
    problem = only(write(tmp_path, HOOK + "logging:\n  colour: blue\n"))
    assert problem.key == "logging.colour"
    assert problem.message == "unknown key (this section has: format, level)"


def test_a_suggestion_never_carries_the_value(tmp_path: Path) -> None:
    problem = only(write(tmp_path, HOOK + f"    secrett: '{SECRET}'\n"))
    assert problem.message == "unknown key; did you mean `secret`?"
    assert SECRET not in str(problem)


# --- pydantic's types in YAML's words ---------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("ingest:\n  allowed_uids: 0\n", "ingest.allowed_uids", "must be a list"),
        ("precheck:\n  backends: hr\n", "precheck.backends", "must be a list"),
        ("ingest:\n  max_connections: 1.5\n", "ingest.max_connections", "must be a whole number"),
        ("queue:\n  max_pending: many\n", "queue.max_pending", "must be a whole number"),
        ("keys: [file]\n", "keys", "must be a mapping (indented `key: value` lines)"),
        ("ingest:\n  socket_group: ''\n", "ingest.socket_group", "must not be empty"),
        ("ingest:\n  socket_group: [a]\n", "ingest.socket_group", "must be text"),
        ("ingest:\n  max_frame: 1\n", "ingest.max_frame", "must be at least 16"),
        ("dispatch:\n  shutdown_grace: -1s\n", "dispatch.shutdown_grace", None),
        ("samba:\n  check_deadline: 1h\n", "samba.check_deadline", "must be at most 8s"),
        (
            "logging:\n  level: 3\n",
            "logging.level",
            "must be one of 'debug', 'info', 'warning' or 'error'",
        ),
    ],
)
def test_type_errors_use_yaml_words(
    tmp_path: Path, section: str, key: str, message: str | None
) -> None:
    problem = only(write(tmp_path, section + HOOK))
    assert problem.key == key
    if message is not None:
        assert problem.message == message
    for pydantic_word in ("tuple", "array", "dictionary", "Input should", "valid integer"):
        assert pydantic_word not in problem.message


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("    tls:\n      verify: maybe\n", "backends.hr.tls.verify", "must be true or false"),
        ("    concurrency: 0\n", "backends.hr.concurrency", "must be at least 1"),
        ("    retry:\n      backoff: 5s\n", "backends.hr.retry.backoff", None),
        ("    retry:\n      backoff: {factor: 0.5}\n", "backends.hr.retry.backoff.factor", None),
    ],
)
def test_plugin_keys_get_the_same_words(
    tmp_path: Path, extra: str, key: str, message: str | None
) -> None:
    problem = only(write(tmp_path, HOOK + extra))
    assert problem.key == key
    if message is not None:
        assert problem.message == message
    assert problem.message.startswith("must ")


@pytest.mark.parametrize(
    "misplaced",
    [
        "queue:\n  max_pending: '{s}'\n",
        "ingest:\n  allowed_uids: '{s}'\n",
        "ingest:\n  max_connections: ['{s}']\n",
        "logging:\n  level: '{s}'\n",
        "keys: '{s}'\n",
        "precheck:\n  timeout: '{s}'\n",
        "samba:\n  initial_dump: '{s}'\n",
        "metrics:\n  listen: '{s}'\n",
        "metrics:\n  listen: 'https://admin:{s}@10.0.0.1:9617'\n",
        "queue:\n  path: ['https://admin:{s}@db.example.com/q']\n",
    ],
)
def test_no_message_repeats_a_value_typed_into_the_wrong_place(
    tmp_path: Path, misplaced: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, misplaced.format(s=SECRET) + HOOK))
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.problems)


# --- tabs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("logging:\n\tlevel: info\n", 2, 1),
        ("logging:\n  level: info\n \tformat: json\n", 3, 2),
        ("precheck:\n  backends:\n\t- hr\n", 3, 1),
    ],
)
def test_a_tab_says_yaml_needs_spaces_with_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    path = write(tmp_path, HOOK + text)
    problem = only(path)
    line += HOOK.count("\n")
    assert (problem.line, problem.column) == (line, column)
    assert problem.message == (
        f"YAML needs spaces for indentation, not tabs (a tab at column {column})"
    )
    assert str(problem) == f"{path}:{line}:{column}: {problem.message}"


def test_a_tab_before_a_secret_does_not_show_it(tmp_path: Path) -> None:
    problem = only(write(tmp_path, HOOK.replace("secret: env:HR_SECRET", f"secret:\t{SECRET}")))
    assert "spaces" in problem.message
    assert SECRET not in str(problem)


def test_other_syntax_errors_give_the_column_too(tmp_path: Path) -> None:
    problem = only(write(tmp_path, "queue:\n  max_pending: [1, 2\nlogging: {}\n"))
    assert (problem.line, problem.column) == (3, 8)
    assert problem.message.startswith("expected ',' or ']'")


# --- durations: a unit, and the loader and the schema agree -----------------------------------


def _example() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(
        (CONFIG_DIR / "adsync.example.yaml").read_text(encoding="utf-8")
    )
    return data


def _loader_accepts(tmp_path: Path, data: dict[str, Any]) -> bool:
    path = tmp_path / "adsync.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    try:
        load_config(path)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("10s", True),
        ("1.5s", True),
        ("500ms", True),
        ("7d", True),
        ("0s", True),
        (10, False),
        (1.5, False),
        (0, False),
        ("10", False),
        ("10 s", False),
        (" 10s", False),
        ("-1s", False),
        ("1e3s", False),
        (".5s", False),
        ("10sec", False),
        ("\u0663s", False),  # ARABIC-INDIC DIGIT THREE: Python's \d would take it
        (True, False),
    ],
)
def test_the_loader_and_the_schema_agree_on_durations(
    tmp_path: Path, value: object, valid: bool
) -> None:
    schema = json.loads((CONFIG_DIR / "adsync.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    data = _example()
    data["backends"]["soffid"]["retry"]["unknown_user_grace"] = value  # ge=0: "0s" is valid
    assert validator.is_valid(data) is valid
    assert _loader_accepts(tmp_path, data) is valid


def test_a_bare_number_is_refused_with_a_hint_and_not_repeated(tmp_path: Path) -> None:
    problem = only(write(tmp_path, "precheck:\n  timeout: 1537\n" + HOOK))
    assert problem.key == "precheck.timeout"
    assert problem.message.startswith("needs a unit, e.g. 10s or 500ms")
    assert "1537" not in str(problem)


def test_python_code_still_passes_seconds() -> None:
    """Outside a config file a Duration field is seconds as a number (typed API)."""
    assert BackoffConfig(initial=5, max=600).initial == 5.0


# --- at least one backend ---------------------------------------------------------------------

_NO_BACKEND = (
    "no backend is configured: add at least one target under `backends:` "
    "(docs/configuration.md, Backends)"
)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("logging:\n  level: info\nbackends: {}\n", 3),
        ("logging:\n  level: info\nbackends:\n  # hr: {type: webhook}\n", 3),
        ("logging:\n  level: info\n", 1),
    ],
)
def test_a_config_without_a_backend_is_an_error(tmp_path: Path, text: str, line: int) -> None:
    problem = only(write(tmp_path, text))
    assert (problem.line, problem.key, problem.message) == (line, "backends", _NO_BACKEND)


def test_the_schema_also_requires_a_backend() -> None:
    schema = json.loads((CONFIG_DIR / "adsync.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    data = _example()
    assert validator.is_valid(data)
    assert not validator.is_valid({**data, "backends": {}})
    assert not validator.is_valid({k: v for k, v in data.items() if k != "backends"})
