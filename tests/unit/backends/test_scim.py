"""SCIM backend against the fake service provider over real loopback sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adsync.backends.scim import ScimBackend, ScimConfig
from adsync.backends.scim.protocol import classify_error, patch_body, user_filter
from adsync.plugin import Backend, Change, OutcomeKind, Secret
from adsync.testing.contract import BackendContract, FakeTarget, sha256_hex
from adsync.testing.scim import FakeScim

TOKEN = "t0ken"


@pytest.fixture(autouse=True)
def scim_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSYNC_TEST_SCIM_TOKEN", TOKEN)


def make(fake: FakeScim, **extra: Any) -> ScimBackend:
    config = ScimConfig(type="scim", url=fake.base_url, token="env:ADSYNC_TEST_SCIM_TOKEN", **extra)
    return ScimBackend("scim", config)


def change(account: str = "jdoe", password: str = "N3w!Pass") -> Change:
    return Change(
        event_id=b"\x02" * 16,
        account=account,
        password=Secret(password),
        changed_at_ms=1_700_000_000_000,
    )


class TestScimContract(BackendContract):
    def make_fake(self) -> FakeTarget:
        return FakeScim(token=TOKEN)

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        assert isinstance(fake, FakeScim)
        return make(fake)


def test_filter_escapes_quotes_and_backslashes() -> None:
    assert user_filter("userName", 'a"b\\c') == 'userName eq "a\\"b\\\\c"'


def test_patch_body_is_a_patchop_replacing_password() -> None:
    body = json.loads(patch_body(Secret('p"w')))
    assert body == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "password", "value": 'p"w'}],
    }


@pytest.mark.parametrize(
    ("status", "scim_type", "kind"),
    [
        (400, "invalidValue", OutcomeKind.REJECTED),
        (400, "invalidSyntax", OutcomeKind.FAILED),
        (401, None, OutcomeKind.FAILED),
        (403, None, OutcomeKind.FAILED),
        (404, None, OutcomeKind.UNKNOWN_USER),
        (429, None, OutcomeKind.UNREACHABLE),
        (500, None, OutcomeKind.UNREACHABLE),
        (503, None, OutcomeKind.UNREACHABLE),
    ],
)
def test_error_mapping(status: int, scim_type: str | None, kind: OutcomeKind) -> None:
    document = {"status": str(status), "scimType": scim_type, "detail": "d"}
    assert classify_error(status, document).kind is kind


async def test_patch_request_bytes_and_headers() -> None:
    async with FakeScim(token=TOKEN) as fake:
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change(password='Pä"ss'))
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
    search, patch = fake.received
    assert search.extra == {} and search.account == "jdoe"
    assert patch.method == "PATCH" and patch.path.endswith("/Users/" + fake.users["jdoe"])
    assert patch.headers["Content-Type"] == "application/scim+json"
    assert patch.body_sha256 == sha256_hex(patch_body(Secret('Pä"ss')))
    assert fake.passwords[fake.users["jdoe"]] == sha256_hex('Pä"ss')


async def test_user_with_quote_in_name_is_found() -> None:
    async with FakeScim(token=TOKEN, users=['o"neil']) as fake:
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change(account='o"neil'))
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED


async def test_wrong_token_is_failed() -> None:
    async with FakeScim(token="other") as fake:
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.FAILED and "401" in outcome.reason


async def test_resource_in_answer_is_delivered_too(tmp_path: Path) -> None:
    async with FakeScim(token=TOKEN) as fake:
        fake.return_resource = True
        backend = make(fake)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
