"""OIM SPML-DSML backend against the strict fake over real loopback sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree
from pydantic import ValidationError

from adsync.backends.oim_spml import OimSpmlBackend, OimSpmlConfig
from adsync.backends.oim_spml.protocol import (
    NOT_IN_OIM,
    PsoId,
    UnsafeXml,
    envelope,
    oim_user_header,
    read_answer,
    safe_parse,
    search_request,
    set_password_request,
    status_request,
)
from adsync.plugin import Backend, Change, OutcomeKind, Secret
from adsync.testing.contract import BackendContract, FakeTarget, sha256_hex
from adsync.testing.oim import FakeOim, validate_spml

OIM_PASSWORD = "oim-adm1n"
GOLDEN = Path(__file__).parent / "golden"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OIM = "http://xmlns.oracle.com/OIM/provisioning"


@pytest.fixture(autouse=True)
def oim_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSYNC_TEST_OIM_PASSWORD", OIM_PASSWORD)


def make(fake: FakeOim, **extra: Any) -> OimSpmlBackend:
    settings: dict[str, Any] = {
        "type": "oim_spml",
        "url": fake.endpoint,
        "username": "xelsysadm",
        "password": "env:ADSYNC_TEST_OIM_PASSWORD",
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


async def deliver(fake: FakeOim, the_change: Change | None = None, **extra: Any) -> Any:
    backend = make(fake, **extra)
    await backend.start()
    try:
        return await backend.deliver(the_change or change())
    finally:
        await backend.close()


class TestOimContract(BackendContract):
    reject_reason = "Password does not satisfy policy"

    def make_fake(self) -> FakeTarget:
        return fake_oim()

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        assert isinstance(fake, FakeOim)
        return make(fake)


# --- the exact envelope (golden documents written from shared/protocols.md section 2.2) ------


async def test_envelopes_are_the_golden_documents() -> None:
    """Header OIMUser (OIM namespace, not WS-Security), processRequest/sOAPElement wrapper,
    scope="pso" with an empty basePsoID, Users.User ID: byte for byte."""
    async with fake_oim() as fake:
        outcome = await deliver(fake)
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    search, setpw = fake.received
    assert search.body == (GOLDEN / "oim_spml_search.xml").read_bytes().strip()
    assert setpw.body == (GOLDEN / "oim_spml_set_password.xml").read_bytes().strip()
    assert setpw.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert setpw.headers["SOAPAction"] == '""'


def test_golden_envelope_structure() -> None:
    """What protocols.md §2.2 says, checked on the golden document by namespace."""
    root = etree.fromstring((GOLDEN / "oim_spml_set_password.xml").read_bytes())
    assert root.tag == f"{{{SOAP}}}Envelope"
    (entry,) = root.find(f"{{{SOAP}}}Header")
    assert entry.tag == f"{{{OIM}}}OIMUser"
    assert entry.get(f"{{{SOAP}}}mustUnderstand") == "0"
    assert [e.tag for e in entry] == [f"{{{OIM}}}OIMUserId", f"{{{OIM}}}OIMUserPassword"]
    (wrapper,) = root.find(f"{{{SOAP}}}Body")
    assert wrapper.tag == f"{{{OIM}}}processRequest"
    (element,) = wrapper
    assert element.tag == "sOAPElement"  # unqualified, as OpenPTK's client writes it
    (spml,) = element
    assert validate_spml(spml) is None
    assert b"wss-wssecurity" not in etree.tostring(root)


# --- requests against the OASIS schemas --------------------------------------------------


def test_search_request_is_valid_spml_search_with_dsml_filter() -> None:
    element = etree.fromstring(search_request("adsync-1-search", "Users.User ID", "j<d>&oe", None))
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
    element = etree.fromstring(search_request("1-starts-with-digit", "Users.User ID", "jdoe", None))
    assert validate_spml(element) is not None


def test_status_request_is_valid_spml_async() -> None:
    assert validate_spml(etree.fromstring(status_request("adsync-1-status1", "r-1"))) is None


def test_answers_with_a_dtd_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>'
    with pytest.raises(UnsafeXml):
        safe_parse(bomb)
    assert read_answer(bomb) is None


def test_control_characters_fail_cleanly() -> None:
    assert OimSpmlConfig  # config import works
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        set_password_request("x", PsoId("81"), Secret("a\x01b"))


def test_config_accepts_oim_attribute_names() -> None:
    config = OimSpmlConfig(
        type="oim_spml",
        url="https://oim:14000/spmlws/OIMProvisioning",
        username="u",
        password="env:X",
        match_attribute="Users.User ID",
    )
    assert config.match_attribute == "Users.User ID" and config.base_pso_id == ""
    assert config.auth == "oim_user"


@pytest.mark.parametrize("name", ["", "  ", "Users.<User>", 'a"b', "a&b", "a\x01b"])
def test_config_refuses_xml_breaking_attribute_names(name: str) -> None:
    with pytest.raises(ValidationError, match="OIM attribute name"):
        OimSpmlConfig(
            type="oim_spml",
            url="https://oim:14000/spmlws/OIMProvisioning",
            username="u",
            password="env:X",
            match_attribute=name,
        )


# --- over the wire ------------------------------------------------------------------------


async def test_two_step_exchange_is_schema_valid_and_carries_the_password() -> None:
    async with fake_oim() as fake:
        outcome = await deliver(fake, change(password="Pä<ss>&"))
    assert outcome.kind is OutcomeKind.DELIVERED
    assert [r.operation for r in fake.received] == ["search", "setPassword"]
    assert all(r.valid for r in fake.received), [r.problem for r in fake.received]
    assert fake.received[1].password_sha256 == sha256_hex("Pä<ss>&")
    assert fake.received[0].extra["scope"] == "pso"
    assert fake.received[0].extra["base_pso_id"] == ""


async def test_no_match_is_unknown_user_with_the_connector_message() -> None:
    async with fake_oim() as fake:
        outcome = await deliver(fake, change(account="nobody"))
    assert outcome.kind is OutcomeKind.UNKNOWN_USER
    assert outcome.reason == NOT_IN_OIM
    assert [r.operation for r in fake.received] == ["search"]


async def test_wrong_credentials_are_a_configuration_failure() -> None:
    async with FakeOim(password="another") as fake:
        outcome = await deliver(fake)
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured, outcome
    assert "authentication failed" in outcome.reason and "check username/password" in outcome.reason
    assert OIM_PASSWORD not in outcome.reason


async def test_ws_security_header_gets_must_understand_fault_and_configuration_failure() -> None:
    """The old default (wsse:Security mustUnderstand=1) against the SPML-DSML service."""
    async with fake_oim() as fake:
        outcome = await deliver(fake, auth="wss_username_token")
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured, outcome
    assert "MustUnderstand" in outcome.reason
    (request,) = fake.received
    assert request.valid  # the request was well-formed: the header is what it refused


async def test_server_fault_is_unreachable_and_not_misconfigured() -> None:
    async with fake_oim() as fake:
        fake.server_fault = True
        outcome = await deliver(fake)
    assert outcome.kind is OutcomeKind.UNREACHABLE and not outcome.misconfigured


async def test_unknown_attribute_name_is_a_configuration_failure() -> None:
    async with fake_oim() as fake:
        outcome = await deliver(fake, match_attribute="usrLogin")
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured, outcome
    assert "usrLogin is not an attribute of OIM users" in outcome.reason


async def test_policy_refusal_is_rejected_with_oims_message() -> None:
    async with fake_oim() as fake:
        fake.reject("Password must contain 2 digits")
        outcome = await deliver(fake)
    assert outcome.kind is OutcomeKind.REJECTED and not outcome.misconfigured
    assert "customError" in outcome.reason and "Password must contain 2 digits" in outcome.reason


async def test_pending_is_polled_with_status_requests_until_done() -> None:
    async with fake_oim() as fake:
        fake.pending(polls=2)
        outcome = await deliver(fake, pending_poll="10ms")
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    ops = [r.operation for r in fake.received]
    assert ops == ["search", "setPassword", "status", "status", "status"]
    assert all(r.valid for r in fake.received), [r.problem for r in fake.received]


async def test_pending_then_refused_is_rejected() -> None:
    async with fake_oim() as fake:
        fake.pending(polls=1)
        fake.asynchronous = True
        fake.mode = fake.mode.REJECT
        fake.reject_reason = "history"
        outcome = await deliver(fake, pending_poll="10ms")
    assert outcome.kind is OutcomeKind.REJECTED and "history" in outcome.reason


async def test_pending_past_the_budget_is_unreachable_with_the_reason() -> None:
    async with fake_oim() as fake:
        fake.pending(polls=None)
        outcome = await deliver(fake, pending_poll="100ms", timeout="1s")
    assert outcome.kind is OutcomeKind.UNREACHABLE, outcome
    assert "pending" in outcome.reason
    assert fake.received[-1].operation == "status"


async def _post(fake: FakeOim, body: bytes, **headers: str) -> tuple[int, bytes]:
    sent = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', **headers}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.endpoint, data=body, headers=sent) as resp,
    ):
        return resp.status, await resp.read()


async def test_fake_refuses_an_unwrapped_body_with_a_client_fault() -> None:
    async with fake_oim() as fake:
        spml = set_password_request("r1", PsoId("81"), Secret("x"))
        unwrapped = (
            f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Header>'
            + oim_user_header("xelsysadm", Secret(OIM_PASSWORD))
            + f"</soap:Header><soap:Body>{spml}</soap:Body></soap:Envelope>"
        ).encode()
        status, data = await _post(fake, unwrapped)
    assert status == 500 and b"soap:Client" in data
    assert "processRequest/sOAPElement" in fake.invalid[0].problem


async def test_fake_refuses_a_schema_invalid_request_with_a_client_fault() -> None:
    async with fake_oim() as fake:
        bad = envelope(
            oim_user_header("xelsysadm", Secret(OIM_PASSWORD)),
            '<pass:setPasswordRequest xmlns:pass="urn:oasis:names:tc:SPML:2:0:password">'
            "<pass:password>x</pass:password></pass:setPasswordRequest>",
        )
        status, data = await _post(fake, bad)
    assert status == 500 and b"soap:Client" in data
    assert fake.invalid and "malformed SPML request" in fake.invalid[0].problem


async def test_fake_answers_soap_1_2_with_version_mismatch() -> None:
    async with fake_oim() as fake:
        body = (
            b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>'
        )
        status, data = await _post(fake, body)
    assert status == 500 and b"soap:VersionMismatch" in data


def test_an_answer_outside_process_request_response_is_not_taken() -> None:
    bare = (
        f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
        '<pass:setPasswordResponse xmlns:pass="urn:oasis:names:tc:SPML:2:0:password" '
        'status="success"/></soap:Body></soap:Envelope>'
    ).encode()
    answer = read_answer(bare)
    assert answer is not None and answer.element is None and answer.problem


async def test_a_200_without_soap_is_not_delivered() -> None:
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>portal</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/spmlws/OIMProvisioning", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        config = OimSpmlConfig.model_validate(
            {"type": "oim_spml", "url": f"http://127.0.0.1:{port}/spmlws/OIMProvisioning",
             "username": "xelsysadm", "password": "env:ADSYNC_TEST_OIM_PASSWORD"}
        )  # fmt: skip
        backend = OimSpmlBackend("oim", config)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    finally:
        await runner.cleanup()
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured, outcome
