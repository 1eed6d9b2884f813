"""OIM SPML backend against the schema-validating fake over real loopback sockets."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from pydantic import ValidationError

from adsync.backends.oim_spml import OimSpmlBackend, OimSpmlConfig
from adsync.backends.oim_spml.protocol import (
    NOT_IN_OIM,
    PsoId,
    UnsafeXml,
    envelope,
    read_answer,
    safe_parse,
    search_request,
    set_password_request,
)
from adsync.plugin import Backend, Change, OutcomeKind, Secret
from adsync.testing.contract import BackendContract, FakeTarget, sha256_hex
from adsync.testing.oim import FakeOim, validate_spml

OIM_PASSWORD = "oim-adm1n"


@pytest.fixture(autouse=True)
def oim_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSYNC_TEST_OIM_PASSWORD", OIM_PASSWORD)


def make(fake: FakeOim, **extra: Any) -> OimSpmlBackend:
    settings: dict[str, Any] = {
        "type": "oim_spml",
        "url": fake.endpoint,
        "username": "xelsysadm",
        "password": "env:ADSYNC_TEST_OIM_PASSWORD",
        "match_attribute": "usrLogin",
        "target_id": "OIM",
    }
    settings.update(extra)
    return OimSpmlBackend("oim", OimSpmlConfig.model_validate(settings))


def fake_oim(**kwargs: Any) -> FakeOim:
    return FakeOim(password=OIM_PASSWORD, **kwargs)


def change(account: str = "jdoe", password: str = "N3w!Pass") -> Change:
    return Change(
        event_id=b"\x03" * 16,
        account=account,
        password=Secret(password),
        changed_at_ms=1_700_000_000_000,
    )


class TestOimContract(BackendContract):
    reject_reason = "Password does not satisfy policy"

    def make_fake(self) -> FakeTarget:
        return fake_oim()

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        assert isinstance(fake, FakeOim)
        return make(fake)


# --- requests against the OASIS schemas --------------------------------------------------


def test_search_request_is_valid_spml_search_with_dsml_filter() -> None:
    element = etree.fromstring(search_request("adsync-1-search", "usrLogin", "j<d>&oe", "OIM"))
    assert validate_spml(element) is None


def test_set_password_request_is_valid_spml_password() -> None:
    xml = set_password_request("adsync-1-setpw", PsoId("81", "OIM"), Secret("<&>\"'é"))
    element = etree.fromstring(xml)
    assert validate_spml(element) is None
    assert sha256_hex(element.findtext("{urn:oasis:names:tc:SPML:2:0:password}password")) == (
        sha256_hex("<&>\"'é")
    )


def test_schema_catches_a_malformed_request() -> None:
    broken = set_password_request("x", PsoId("81"), Secret("p")).replace("pass:psoID", "pass:id")
    assert validate_spml(etree.fromstring(broken)) is not None


def test_request_id_must_be_an_xml_id() -> None:
    element = etree.fromstring(search_request("1-starts-with-digit", "usrLogin", "jdoe", None))
    assert validate_spml(element) is not None


def test_envelope_carries_a_password_text_username_token() -> None:
    data = envelope("xelsysadm", Secret("s3cret"), "<x/>")
    root = etree.fromstring(data)
    token = root.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Header/"
        "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security/"
        "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}UsernameToken"
    )
    assert token is not None


def test_answers_with_a_dtd_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>'
    with pytest.raises(UnsafeXml):
        safe_parse(bomb)
    assert read_answer(bomb) is None


def test_control_characters_fail_cleanly() -> None:
    assert OimSpmlConfig  # config import works
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        set_password_request("x", PsoId("81"), Secret("a\x01b"))


def test_config_requires_a_dsml_attribute_name() -> None:
    with pytest.raises(ValidationError, match="DSML"):
        OimSpmlConfig(
            type="oim_spml",
            url="https://oim:14000/spml-xsd/SPMLService",
            username="u",
            password="env:X",
            match_attribute="Users.User ID",
        )


# --- over the wire ------------------------------------------------------------------------


async def test_two_step_exchange_is_schema_valid_and_carries_the_password() -> None:
    async with fake_oim() as fake:
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change(password="Pä<ss>&"))
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
    assert [r.operation for r in fake.received] == ["search", "setPassword"]
    assert all(r.valid for r in fake.received), [r.problem for r in fake.received]
    assert fake.received[1].password_sha256 == sha256_hex("Pä<ss>&")
    expected = envelope(
        "xelsysadm",
        Secret(OIM_PASSWORD),
        set_password_request(
            "adsync-" + "03" * 16 + "-setpw", PsoId("81", "OIM"), Secret("Pä<ss>&")
        ),
    )
    assert fake.received[1].body_sha256 == sha256_hex(expected)
    assert fake.received[1].headers["Content-Type"] == "text/xml; charset=utf-8"


async def test_no_match_is_unknown_user_with_the_connector_message() -> None:
    async with fake_oim() as fake:
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change(account="nobody"))
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.UNKNOWN_USER
    assert outcome.reason == NOT_IN_OIM
    assert [r.operation for r in fake.received] == ["search"]


async def test_wrong_credentials_are_failed_not_retried() -> None:
    async with FakeOim(password="another") as fake:
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.FAILED and "FailedAuthentication" in outcome.reason


async def test_server_fault_is_unreachable() -> None:
    async with fake_oim() as fake:
        fake.server_fault = True
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.UNREACHABLE


async def test_wrong_attribute_finds_nobody() -> None:
    async with fake_oim() as fake:
        backend = make(fake, match_attribute="mail")
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.UNKNOWN_USER


async def test_fake_refuses_a_schema_invalid_request_with_a_client_fault() -> None:
    import aiohttp

    async with fake_oim() as fake:
        bad = envelope(
            "xelsysadm",
            Secret(OIM_PASSWORD),
            '<pass:setPasswordRequest xmlns:pass="urn:oasis:names:tc:SPML:2:0:password">'
            "<pass:password>x</pass:password></pass:setPasswordRequest>",
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                fake.endpoint,
                data=bad,
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
            ) as resp,
        ):
            status, data = resp.status, await resp.read()
    assert status == 500 and b"soap:Client" in data
    assert fake.invalid and "SPML schema" in fake.invalid[0].problem
