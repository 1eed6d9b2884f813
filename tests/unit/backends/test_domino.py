"""Domino backend against the fake Domino REST API over real loopback sockets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from adsync.backends.domino import DominoBackend, DominoConfig
from adsync.backends.domino.protocol import directory_query
from adsync.plugin import Backend, Change, OutcomeKind, Secret
from adsync.testing.contract import BackendContract, FakeTarget, sha256_hex
from adsync.testing.domino import FakeDomino

DOMINO_PASSWORD = "d0mino"
GUID = uuid.UUID("abf599a2-49c1-4d58-afa1-7cf29a54d1a7")


@pytest.fixture(autouse=True)
def domino_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSYNC_TEST_DOMINO_PASSWORD", DOMINO_PASSWORD)


def config(*servers: str, **extra: Any) -> DominoConfig:
    settings: dict[str, Any] = {
        "type": "domino",
        "servers": list(servers),
        "username": "adsync",
        "password": "env:ADSYNC_TEST_DOMINO_PASSWORD",
    }
    settings.update(extra)
    return DominoConfig.model_validate(settings)


def fake_domino(**kwargs: Any) -> FakeDomino:
    return FakeDomino(password=DOMINO_PASSWORD, **kwargs)


def change(guid: uuid.UUID | None = GUID, password: str = "N3w!Pass") -> Change:
    return Change(
        event_id=b"\x04" * 16,
        account="jdoe",
        password=Secret(password),
        changed_at_ms=1_700_000_000_000,
        object_guid=guid,
    )


async def deliver(cfg: DominoConfig, item: Change) -> Any:
    backend = DominoBackend("domino", cfg)
    await backend.start()
    try:
        return await backend.deliver(item)
    finally:
        await backend.close()


class TestDominoContract(BackendContract):
    target_rejects = False  # requests are applied later by the Request Processor
    object_guid = GUID

    def make_fake(self) -> FakeTarget:
        return fake_domino()

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        return DominoBackend("domino", config(fake.url))


def test_expire_after_defaults_to_domino_request_expiration() -> None:
    assert config("https://d").retry.expire_after == 365 * 60
    assert config("https://d", retry={"max_rejections": 2}).retry.expire_after == 365 * 60
    assert config("https://d", retry={"expire_after": "1h"}).retry.expire_after == 3600


def test_password_types_follow_domino_options() -> None:
    assert config("https://d").password_types == ["HTTP"]
    assert config("https://d", sync="notes_id").password_types == ["NotesID"]
    assert config("https://d", sync="http_and_notes_id").password_types == ["HTTP", "NotesID"]


def test_directory_query_passes_the_value_as_a_variable() -> None:
    assert directory_query(config("https://d"), by_account=False) == (
        "Form = 'Person' and ADObjectGUID = ?value"
    )


async def test_request_document_carries_guid_password_types_and_expiry() -> None:
    async with fake_domino() as fake:
        outcome = await deliver(config(fake.url, sync="http_and_notes_id"), change())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert [r.operation for r in fake.received] == ["auth", "query", "create"]
    (document,) = fake.documents
    assert document["Form"] == "ADPasswordChangeRequest"
    assert document["ADObjectGUID"] == str(GUID)
    assert document["PasswordTypes"] == ["HTTP", "NotesID"]
    assert document["ExpiresAt"] == "2023-11-15T04:18:20Z"  # changed_at + 365 min
    assert document["NewPassword.sha256"] == sha256_hex("N3w!Pass")
    assert document["@unid"] in outcome.reason
    create = fake.received[2]
    assert create.headers["Authorization"].startswith("Bearer ")
    assert json.loads(create.body)["Form"] == "ADPasswordChangeRequest"


async def test_unknown_guid_is_unknown_user_and_no_request_is_created() -> None:
    async with fake_domino() as fake:
        outcome = await deliver(config(fake.url), change(guid=uuid.uuid4()))
    assert outcome.kind is OutcomeKind.UNKNOWN_USER
    assert not fake.documents


async def test_without_guid_the_account_item_finds_it() -> None:
    async with fake_domino() as fake:
        cfg = config(fake.url, directory={"account_item": "ShortName"})
        outcome = await deliver(cfg, change(guid=None))
    assert outcome.kind is OutcomeKind.DELIVERED
    assert fake.documents[0]["ADObjectGUID"] == str(GUID)


async def test_without_guid_and_without_account_item_is_failed() -> None:
    async with fake_domino() as fake:
        outcome = await deliver(config(fake.url), change(guid=None))
    assert outcome.kind is OutcomeKind.FAILED and "objectGUID" in outcome.reason
    assert not fake.received


async def test_two_processors_first_down_delivers_through_second() -> None:
    async with fake_domino() as first, fake_domino() as second:
        await first.go_down()
        outcome = await deliver(config(first.url, second.url), change())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert len(second.documents) == 1 and not first.received


async def test_bad_credentials_are_failed() -> None:
    async with FakeDomino(password="other") as fake:
        outcome = await deliver(config(fake.url), change())
    assert outcome.kind is OutcomeKind.FAILED and "credentials" in outcome.reason


async def test_unconfigured_form_is_failed_with_drapi_message() -> None:
    async with fake_domino(request_form="SomethingElse") as fake:
        outcome = await deliver(config(fake.url), change())
    assert outcome.kind is OutcomeKind.FAILED and "not configured" in outcome.reason


async def test_expired_bearer_is_renewed_once() -> None:
    async with fake_domino() as fake:
        backend = DominoBackend("domino", config(fake.url))
        await backend.start()
        try:
            assert (await backend.deliver(change())).kind is OutcomeKind.DELIVERED
            fake.expire_tokens()
            assert (await backend.deliver(change())).kind is OutcomeKind.DELIVERED
        finally:
            await backend.close()
    assert [r.operation for r in fake.received].count("auth") == 2


async def test_password_item_is_encrypted_for_the_configured_users() -> None:
    """DRAPI v1.1.0+: the form mode marks the password field Encrypt; the payload says for
    whom (encryptsign.md). The request carries @encryption with the configured users."""
    async with fake_domino() as fake:
        cfg = config(fake.url, request={"encryption": {"users": ["CN=proc1/O=Org"]}})
        outcome = await deliver(cfg, change())
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert json.loads(fake.received[2].body)["@encryption"] == {"users": ["CN=proc1/O=Org"]}
    (document,) = fake.documents
    assert document["@encrypted_for"] == {
        "users": ["CN=proc1/O=Org"],
        "keys": [],
        "items": ["NewPassword"],
    }


async def test_default_config_asks_for_encryption() -> None:
    async with fake_domino() as fake:
        outcome = await deliver(config(fake.url), change())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert json.loads(fake.received[2].body)["@encryption"] == {}


async def test_no_encryption_against_an_encrypting_form_mode_is_a_configuration_failure() -> None:
    async with fake_domino() as fake:
        outcome = await deliver(config(fake.url, request={"encryption": None}), change())
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured, outcome
    assert "E1130" in outcome.reason
    assert not fake.documents


async def test_no_encryption_when_the_form_mode_does_not_encrypt() -> None:
    async with fake_domino() as fake:
        fake.encrypted_fields = set()
        outcome = await deliver(config(fake.url, request={"encryption": None}), change())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert "@encryption" not in json.loads(fake.received[2].body)


async def test_form_and_item_names_are_configurable() -> None:
    fields = {"guid": "Guid", "password": "Secret", "password_types": "Types",
              "expires": "Expiry", "account": "Login", "event_id": "Event"}  # fmt: skip
    async with fake_domino(
        request_form="PwReq", request_fields=set(fields.values()), request_scope="pwreq"
    ) as fake:
        fake.encrypted_fields = {"Secret"}
        cfg = config(
            fake.url,
            request={"scope": "pwreq", "form": "PwReq", "fields": fields,
                     "encryption": {"keys": ["PwSync"]}},
        )  # fmt: skip
        outcome = await deliver(cfg, change())
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    body = json.loads(fake.received[2].body)
    assert set(body) == {"Form", "@encryption", *fields.values()}
    assert body["Form"] == "PwReq" and sha256_hex(body["Secret"]) == sha256_hex("N3w!Pass")
    assert fake.documents[0]["@encrypted_for"]["keys"] == ["PwSync"]


async def test_bad_credentials_mark_the_backend_misconfigured() -> None:
    async with FakeDomino(password="other") as fake:
        outcome = await deliver(config(fake.url), change())
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured
