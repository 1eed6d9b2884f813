"""LdapBackend against a real OpenLDAP slapd (ppolicy overlay, LDAPS and StartTLS)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from adsync.backends.ldap import LdapBackend, LdapConfig
from adsync.plugin import Change, Outcome, OutcomeKind, Secret
from adsync.testing.slapd import (
    PEOPLE,
    POLICY_MIN_LENGTH,
    SERVICE_DN,
    SlapdServer,
    initial_password,
    make_tls_files,
    user_dn,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_backend(slapd: SlapdServer, **overrides: Any) -> LdapBackend:
    raw: dict[str, Any] = {
        "type": "ldap",
        "url": slapd.ldaps_url,
        "bind_dn": SERVICE_DN,
        "bind_password": f"file:{slapd.service_password_file}",
        "base_dn": PEOPLE,
        "filter": "(uid={account})",
        "timeout": 5,
        "tls": {"ca_file": str(slapd.tls.ca_cert)},
    }
    raw.update(overrides)
    return LdapBackend("ldap", LdapConfig.model_validate(raw))


def change(account: str, password: str) -> Change:
    return Change(
        event_id=uuid.uuid4().bytes,
        account=account,
        password=Secret(password),
        changed_at_ms=1_700_000_000_000,
        domain="ADSYNC",
    )


async def deliver(backend: LdapBackend, account: str, password: str) -> Outcome:
    await backend.start()
    try:
        outcome = await backend.deliver(change(account, password))
    finally:
        await backend.close()
    assert sha(password) not in outcome.reason and password not in outcome.reason
    return outcome


@pytest.mark.parametrize(
    ("transport", "method"),
    [
        ("ldaps", "password_modify"),
        ("starttls", "password_modify"),
        ("ldaps", "replace"),
    ],
)
async def test_password_is_set_and_a_bind_with_it_succeeds(
    slapd: SlapdServer, transport: str, method: str
) -> None:
    new = "Brand-new-Pässwörd-42"
    overrides: dict[str, Any] = {"password_method": method}
    if transport == "starttls":
        overrides.update(url=slapd.ldap_url, starttls=True)
    outcome = await deliver(make_backend(slapd, **overrides), "alice", new)
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.reason
    assert slapd.can_bind(user_dn("alice"), new)
    assert not slapd.can_bind(user_dn("alice"), initial_password("alice"))
    # slapd hashed it (ppolicy_hash_cleartext / password modify): no cleartext stored.
    assert slapd.stored_password_value("alice").startswith("e1NTSEF9")  # base64 "{SSHA}"


async def test_no_such_entry_is_unknown_user(slapd: SlapdServer) -> None:
    outcome = await deliver(make_backend(slapd), "nobody", "Whatever-long-pass-1")
    assert outcome.kind is OutcomeKind.UNKNOWN_USER, outcome.reason


async def test_ppolicy_violation_is_rejected(slapd: SlapdServer) -> None:
    short = "Sh0rt!"
    assert len(short) < POLICY_MIN_LENGTH
    for method in ("password_modify", "replace"):
        outcome = await deliver(make_backend(slapd, password_method=method), "bob", short)
        assert outcome.kind is OutcomeKind.REJECTED, (method, outcome.reason)
        assert "constraintViolation" in outcome.reason
    assert slapd.can_bind(user_dn("bob"), initial_password("bob"))


async def test_server_stopped_is_unreachable(slapd: SlapdServer) -> None:
    slapd.stop()
    outcome = await deliver(make_backend(slapd), "alice", "Another-long-pass-7")
    assert outcome.kind is OutcomeKind.UNREACHABLE, outcome.reason


async def test_wrong_bind_password_is_failed(
    slapd: SlapdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADSYNC_TEST_LDAP_BIND", "not-the-password")
    backend = make_backend(slapd, bind_password="env:ADSYNC_TEST_LDAP_BIND")
    outcome = await deliver(backend, "alice", "Another-long-pass-8")
    assert outcome.kind is OutcomeKind.FAILED, outcome.reason
    assert "invalidCredentials" in outcome.reason
    assert slapd.can_bind(user_dn("alice"), initial_password("alice"))


async def test_missing_base_dn_is_failed(slapd: SlapdServer) -> None:
    backend = make_backend(slapd, base_dn="ou=nowhere,dc=example,dc=test")
    outcome = await deliver(backend, "alice", "Another-long-pass-9")
    assert outcome.kind is OutcomeKind.FAILED, outcome.reason
    assert "base_dn" in outcome.reason


async def test_untrusted_certificate_is_refused(slapd: SlapdServer, tmp_path: Path) -> None:
    other_ca = make_tls_files(tmp_path / "other").ca_cert
    backend = make_backend(slapd, tls={"ca_file": str(other_ca)})
    outcome = await deliver(backend, "alice", "Another-long-pass-10")
    assert outcome.kind is not OutcomeKind.DELIVERED, outcome.reason
    assert slapd.can_bind(user_dn("alice"), initial_password("alice"))


@pytest.mark.parametrize("account", ["*", "alice)(uid=*", "*)(|(uid=*", "al*"])
async def test_filter_injection_is_escaped(slapd: SlapdServer, account: str) -> None:
    outcome = await deliver(make_backend(slapd), account, "Injected-long-pass-1")
    assert outcome.kind is OutcomeKind.UNKNOWN_USER, outcome.reason
    for uid in ("alice", "bob", "carol", "x*y"):
        assert slapd.can_bind(user_dn(uid), initial_password(uid)), uid


async def test_an_escaped_star_matches_only_the_literal_name(slapd: SlapdServer) -> None:
    new = "Star-account-pass-11"
    outcome = await deliver(make_backend(slapd), "x*y", new)
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.reason
    assert slapd.can_bind(user_dn("x*y"), new)
    for uid in ("alice", "bob", "carol"):
        assert slapd.can_bind(user_dn(uid), initial_password(uid)), uid
