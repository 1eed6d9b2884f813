"""adsync doctor against a real slapd: the TLS handshake, then LdapBackend.probe() (a bind as
the service account and a read of base_dn; no password is changed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adsync.config import config_from_data
from adsync.doctor import Context, Status
from adsync.doctor.targets import targets
from adsync.testing.slapd import PEOPLE, SERVICE_DN, SlapdServer, user_dn


def ldap_backend(slapd: SlapdServer, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": "ldap",
        "url": slapd.ldaps_url,
        "bind_dn": SERVICE_DN,
        "bind_password": f"file:{slapd.service_password_file}",
        "base_dn": PEOPLE,
        "timeout": "5s",
        "tls": {"ca_file": str(slapd.tls.ca_cert)},
    }
    raw.update(overrides)
    return raw


async def check(tmp_path: Path, backend: dict[str, Any]) -> dict[str, Any]:
    config = config_from_data({"backends": {"dir": backend}})
    results = await targets(Context(config=config, config_path=tmp_path / "adsync.yaml"))
    return {r.name: r for r in results}


async def test_bind_and_base_are_right(slapd: SlapdServer, tmp_path: Path) -> None:
    results = await check(tmp_path, ldap_backend(slapd))
    assert results[f"target dir {slapd.ldaps_url}"].detail == "TLS handshake ok"
    probe = results["target dir probe"]
    assert probe.status is Status.OK and probe.detail == f"bind as {SERVICE_DN} ok; base_dn exists"
    # nothing was changed: every user still binds with their initial password
    from adsync.testing.slapd import initial_password

    assert slapd.can_bind(user_dn("alice"), initial_password("alice"))


async def test_wrong_bind_password(slapd: SlapdServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-password")
    results = await check(tmp_path, ldap_backend(slapd, bind_password=f"file:{wrong}"))
    probe = results["target dir probe"]
    assert probe.status is Status.FAIL and "invalidCredentials (49)" in probe.detail
    assert "not-the-password" not in probe.detail
    assert "fix the backend's settings" in probe.fix


async def test_base_dn_that_does_not_exist(slapd: SlapdServer, tmp_path: Path) -> None:
    missing = "ou=nobody,dc=example,dc=test"
    results = await check(tmp_path, ldap_backend(slapd, base_dn=missing))
    probe = results["target dir probe"]
    assert probe.status is Status.FAIL and f"base_dn {missing} does not exist" in probe.detail


async def test_untrusted_certificate_stops_before_the_bind(
    slapd: SlapdServer, tmp_path: Path
) -> None:
    backend = ldap_backend(slapd)
    del backend["tls"]
    results = await check(tmp_path, backend)
    handshake = results[f"target dir {slapd.ldaps_url}"]
    assert handshake.status is Status.FAIL and handshake.detail.startswith(
        "TLS certificate not trusted"
    )
    assert "target dir probe" not in results
