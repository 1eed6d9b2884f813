"""One validation path: the installed plugins' discriminated union validates ``backends``;
secret fields are found by their ``SecretField`` marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from adsync import config as config_module
from adsync.backends.soffid.config import SoffidConfig
from adsync.backends.webhook.config import WebhookConfig
from adsync.config import ConfigError, config_from_data, config_json_schema, config_model
from adsync.plugin import (
    Backend,
    BackendConfig,
    Change,
    Outcome,
    SecretRef,
    available_backend_types,
    load_backend_class,
)

HOOK = {"type": "webhook", "url": "https://hr.example.com/hook", "secret": "env:HR"}


def test_entries_are_the_plugins_models_and_a_reload_compares_equal() -> None:
    first = config_from_data({"backends": {"hr": HOOK}})
    second = config_from_data({"backends": {"hr": dict(HOOK)}})
    assert isinstance(first.backends["hr"], WebhookConfig)
    assert type(first) is config_model()
    assert first == second
    changed = config_from_data({"backends": {"hr": {**HOOK, "timeout": "3s"}}})
    assert changed.backends["hr"] != first.backends["hr"]


def test_the_schema_and_the_loader_accept_the_same_plugin_types() -> None:
    entry = next(iter(config_json_schema()["properties"]["backends"]["patternProperties"].values()))
    schema_types = sorted(entry["discriminator"]["mapping"])
    assert schema_types == available_backend_types()
    with pytest.raises(ConfigError) as info:
        config_from_data({"backends": {"x": {"type": "nope"}}})
    (problem,) = info.value.problems
    assert problem.message.endswith(f"(installed: {', '.join(schema_types)})")


def test_optional_secret_reference_is_anchored_at_the_config_directory(tmp_path: Path) -> None:
    soffid = {
        "type": "soffid",
        "url": "https://soffid.example.com",
        "agent": "AD",
        "auth": "basic",
        "username": "sync",
        "password": "file:secrets/soffid.key",
    }
    loaded = config_from_data({"backends": {"s": soffid}}, base_dir=tmp_path)
    entry = loaded.backends["s"]
    assert isinstance(entry, SoffidConfig)
    assert entry.password == f"file:{tmp_path / 'secrets/soffid.key'}"


class _TokenConfig(BackendConfig):
    token: SecretRef
    note: str = "file:not-a-secret"  # a plain string that looks like a reference stays as is


class _TokenBackend(Backend[_TokenConfig]):
    config_model: ClassVar[type[BackendConfig]] = _TokenConfig

    async def deliver(self, change: Change) -> Outcome:
        return Outcome.delivered()


class _Broken(Exception):
    pass


@pytest.fixture
def extra_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party plugin ``token`` and a plugin ``broken`` whose import fails."""
    installed = ["broken", "token", "webhook"]

    def load(type_name: str) -> type[Backend[Any]]:
        if type_name == "token":
            return _TokenBackend
        if type_name == "broken":
            raise _Broken
        return load_backend_class(type_name)

    monkeypatch.setattr(config_module, "available_backend_types", lambda: installed)
    monkeypatch.setattr(config_module, "load_backend_class", load)


@pytest.mark.usefixtures("extra_plugins")
def test_a_third_party_secret_field_is_found_by_its_marker(tmp_path: Path) -> None:
    data = {"backends": {"t": {"type": "token", "token": "file:t.key"}}}
    entry = config_from_data(data, base_dir=tmp_path).backends["t"]
    assert isinstance(entry, _TokenConfig)
    assert entry.token == f"file:{tmp_path / 't.key'}"
    assert entry.note == "file:not-a-secret"


@pytest.mark.usefixtures("extra_plugins")
def test_a_plugin_that_does_not_load_is_named_not_crashed_on() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_data({"backends": {"b": {"type": "broken"}, "n": {"type": "nope"}}})
    found = {p.key: p.message for p in info.value.problems}
    assert found["backends.b.type"] == "plugin 'broken' cannot be loaded (_Broken)"
    assert found["backends.n.type"] == (
        "no installed plugin provides type 'nope' (installed: broken, token, webhook)"
    )


@pytest.mark.parametrize(
    ("backends", "key", "message"),
    [
        ([], "backends", "must be a mapping of backend name to its settings"),
        ({"x": "webhook"}, "backends.x", "must be a mapping with at least a 'type' key"),
        (
            {"x": {"url": "https://x/"}},
            "backends.x.type",
            "required key missing (the plugin's name)",
        ),
        ({"x": {"type": None}}, "backends.x.type", "required key missing (the plugin's name)"),
        ({"x": {"type": 3}}, "backends.x.type", "must be a plugin name such as webhook"),
        (
            {"-x": HOOK},
            "backends.-x",
            "a backend name is 1 to 63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        ),
    ],
)
def test_the_union_errors_are_worded_for_operators(
    backends: object, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_data({"backends": backends})
    assert [(p.key, p.message) for p in info.value.problems] == [(key, message)]


@pytest.mark.parametrize("data", [{}, {"backends": None}, {"backends": {}}])
def test_a_config_without_a_backend_is_refused(data: dict[str, object]) -> None:
    """A daemon with no target would accept passwords and send them nowhere."""
    with pytest.raises(ConfigError) as info:
        config_from_data(data)
    assert [(p.key, p.message) for p in info.value.problems] == [
        (
            "backends",
            "no backend is configured: add at least one target under `backends:` "
            "(docs/configuration.md, Backends)",
        )
    ]
