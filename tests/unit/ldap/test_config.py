from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adsync.backends.ldap import LdapConfig

BASE: dict[str, Any] = {
    "type": "ldap",
    "url": "ldaps://ldap.example.com",
    "bind_dn": "cn=adsync,dc=example,dc=com",
    "bind_password": "file:/etc/adsync/ldap.secret",
    "base_dn": "ou=people,dc=example,dc=com",
}


def test_defaults() -> None:
    config = LdapConfig.model_validate(BASE)
    assert config.filter == "(uid={account})"
    assert config.password_method == "password_modify"
    assert config.tls.verify is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"url": "ldap://ldap.example.com"}, "in clear"),
        ({"url": "ldaps://ldap.example.com", "starttls": True}, "ldap:// only"),
        ({"url": "http://x"}, "ldaps://"),
        ({"url": "ldaps://cn=admin:Pw9@ldap.example.com"}, "use bind_dn and bind_password"),
        ({"bind_password": "hunter2"}, "inline"),
        ({"filter": "(uid=alice)"}, "{account}"),
        ({"password_method": "md5"}, "password_modify"),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LdapConfig.model_validate({**BASE, **override})


def test_starttls_on_plain_port_is_allowed() -> None:
    config = LdapConfig.model_validate({**BASE, "url": "ldap://ldap.example.com", "starttls": True})
    assert config.starttls


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(ValidationError) as info:
        LdapConfig.model_validate({**BASE, "url": "ldaps://admin:Pw9Secret@ldap.example.com/"})
    assert "Pw9Secret" not in str(info.value.errors(include_input=False))
