"""SCIM backend against the fake service provider over real loopback sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adsync.backends.scim import ScimBackend, ScimConfig
from adsync.backends.scim.protocol import (
    DETAIL_MAX,
    NO_ENDPOINT,
    classify_error,
    classify_patch,
    find_id,
    patch_body,
    user_filter,
)
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
        (404, None, OutcomeKind.FAILED),
        (409, "uniqueness", OutcomeKind.FAILED),
        (409, None, OutcomeKind.FAILED),
        (408, None, OutcomeKind.UNREACHABLE),
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


async def deliver_once(fake: FakeScim, backend: ScimBackend, password: str = "N3w!Pass") -> Any:
    await backend.start()
    try:
        return await backend.deliver(change(password=password))
    finally:
        await backend.close()


def test_404_on_the_search_is_a_configuration_failure() -> None:
    """RFC 7644 §3.12: 404 = the endpoint does not exist; no match is 200 with 0 results."""
    user_id, outcome = find_id(404, {"status": "404", "detail": "Resource not found"})
    assert user_id is None and outcome is not None
    assert outcome.kind is OutcomeKind.FAILED and outcome.reason == NO_ENDPOINT
    _, none_found = find_id(200, {"schemas": [], "totalResults": 0, "Resources": []})
    assert none_found is not None and none_found.kind is OutcomeKind.UNKNOWN_USER


def test_404_on_the_patch_of_a_found_user_is_unknown_user() -> None:
    outcome = classify_patch(404, {"status": "404", "detail": "Resource 1 not found"})
    assert outcome.kind is OutcomeKind.UNKNOWN_USER


async def test_wrong_base_path_fails_at_once_with_the_reason() -> None:
    async with FakeScim(token=TOKEN) as fake:
        config = ScimConfig(
            type="scim",
            url=fake.url + "/scim/v2/no-such-tenant",
            token="env:ADSYNC_TEST_SCIM_TOKEN",
        )
        outcome = await deliver_once(fake, ScimBackend("scim", config))
    assert outcome.kind is OutcomeKind.FAILED
    assert "endpoint does not exist" in outcome.reason and "url" in outcome.reason
    assert [r.operation for r in fake.received] == ["no_endpoint"]  # no PATCH was tried


async def test_409_on_the_patch_is_permanent() -> None:
    async with FakeScim(token=TOKEN) as fake:
        fake.patch_error = (409, "uniqueness", "value already in use")
        outcome = await deliver_once(fake, make(fake))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason.startswith("HTTP 409 uniqueness: value already in use")


async def test_user_gone_between_search_and_patch_is_unknown_user() -> None:
    async with FakeScim(token=TOKEN) as fake:
        fake.patch_error = (404, None, "Resource gone")
        outcome = await deliver_once(fake, make(fake))
    assert outcome.kind is OutcomeKind.UNKNOWN_USER


@pytest.mark.parametrize("offset", [DETAIL_MAX - 10, DETAIL_MAX - 3, DETAIL_MAX - 1])
async def test_detail_is_scrubbed_before_it_is_cut(offset: int) -> None:
    """A password across the cut must not survive even in part."""
    password = "Zq8#Across-The-Cut-77"
    async with FakeScim(token=TOKEN) as fake:
        fake.patch_error = (400, "invalidValue", "x" * offset + password + " is too weak")
        outcome = await deliver_once(fake, make(fake), password=password)
    assert outcome.kind is OutcomeKind.REJECTED
    for size in range(4, len(password) + 1):
        for start in range(len(password) - size + 1):
            assert password[start : start + size] not in outcome.reason


async def test_token_echoed_in_an_error_is_scrubbed() -> None:
    async with FakeScim(token=TOKEN) as fake:
        fake.patch_error = (403, None, f"token {TOKEN} may not write passwords")
        outcome = await deliver_once(fake, make(fake))
    assert outcome.kind is OutcomeKind.FAILED and TOKEN not in outcome.reason


async def test_filter_attribute_and_operator_are_case_insensitive() -> None:
    """RFC 7644 §3.4.2.2: the fake accepts what a real provider accepts."""
    async with FakeScim(token=TOKEN) as fake:
        backend = make(fake, match_attribute="USERNAME")
        outcome = await deliver_once(fake, backend)
    assert outcome.kind is OutcomeKind.DELIVERED
