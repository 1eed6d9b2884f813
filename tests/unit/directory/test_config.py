"""The directory: section and the scope: key: what the loader accepts and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from adsync.config import ConfigError, config_from_data, load_config
from adsync.reload import plan_reload

HOOK = {"type": "webhook", "url": "http://127.0.0.1:1/h", "secret": "env:X"}
DIRECTORY = {
    "url": "ldapi:///var/lib/samba/private/ldap_priv/ldapi",
    "bind_dn": "CN=reader,CN=Users,DC=example,DC=com",
    "bind_password": "file:/etc/adsync/directory.secret",
}


def problems(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_data(data)
    return str(info.value)


def test_scope_and_directory_load() -> None:
    config = config_from_data(
        {
            "directory": DIRECTORY,
            "backends": {
                "oim": {**HOOK, "scope": {"include_groups": ["OIM users"]}},
                "hr": {**HOOK, "scope": {"exclude_accounts": ["svc-*"]}},
            },
        }
    )
    assert config.directory is not None and config.directory.cache_ttl == 5.0
    assert config.backends["oim"].scope.include_groups == ("OIM users",)
    assert config.backends["hr"].scope.exclude_accounts == ("svc-*",)


def test_group_and_ou_rules_need_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "adsync.yaml"
    path.write_text(
        "backends:\n  oim:\n    type: webhook\n    url: http://127.0.0.1:1/h\n"
        "    secret: env:X\n    scope:\n      include_ous: [OU=Sales,DC=x]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:6: backends.oim.scope: group and OU rules need the top-level directory: section"
    )
    # globs alone do not
    config_from_data({"backends": {"hr": {**HOOK, "scope": {"include_accounts": ["a*"]}}}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "ldap://dc2.example.com"}, "a loopback host or ldapi:// only"),
        ({"url": "ldaps://10.0.0.1:636"}, "a loopback host or ldapi:// only"),
        ({"url": "http://127.0.0.1"}, "must be ldapi:///PATH"),
        ({"url": "ldapi://"}, "needs the socket's path"),
        ({"bind_password": None}, "auth: simple needs bind_dn and bind_password"),
        ({"auth": "external"}, "auth: external takes no bind_dn or bind_password"),
        ({"bind_password": "hunter2"}, "inline secrets are not allowed"),
        ({"budget": "0s"}, "directory.budget: must be more than 0ms"),
    ],
)
def test_directory_refusals(change: dict[str, object], message: str) -> None:
    text = problems({"directory": {**DIRECTORY, **change}, "backends": {"hr": HOOK}})
    assert message in text
    assert "hunter2" not in text


def test_local_urls_accepted() -> None:
    for url in ("ldap://127.0.0.1", "ldaps://localhost:636", "ldap://[::1]:389"):
        config_from_data({"directory": {**DIRECTORY, "url": url}, "backends": {"hr": HOOK}})
    negotiate = {"url": "ldap://127.0.0.1", "auth": "negotiate"}
    config_from_data({"directory": negotiate, "backends": {"hr": HOOK}})


def test_the_ldap_backends_search_scope_has_its_own_key() -> None:
    ldap = {
        "type": "ldap", "url": "ldaps://127.0.0.1", "bind_dn": "cn=x",
        "bind_password": "env:X", "base_dn": "dc=x",
    }  # fmt: skip
    assert "the LDAP search scope (one | sub) is search_scope" in problems(
        {"backends": {"l": {**ldap, "scope": "one"}}}
    )
    config = config_from_data({"backends": {"l": {**ldap, "search_scope": "one"}}})
    assert config.backends["l"].search_scope == "one"  # type: ignore[attr-defined]


def test_directory_is_restart_only() -> None:
    old = config_from_data({"backends": {"hr": HOOK}})
    new = config_from_data({"directory": DIRECTORY, "backends": {"hr": HOOK}})
    plan = plan_reload(old, new)
    assert plan.restart_needed == ("directory",)
    assert plan.config.directory is None
