"""Soffid backend against the fake sync server over real loopback sockets."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adsync.backends.soffid import SoffidBackend, SoffidConfig
from adsync.backends.soffid.protocol import (
    classify_check,
    classify_propagation,
    eris_quote,
    query_string,
)
from adsync.plugin import Backend, Candidate, Change, OutcomeKind, Secret, Verdict
from adsync.testing.contract import BackendContract, FakeTarget, sha256_hex
from adsync.testing.soffid import FakeSoffid
from adsync.testing.tls import make_self_signed

AGENT = "AD adsync.test"


def make(*urls: str, **extra: Any) -> SoffidBackend:
    config = SoffidConfig(type="soffid", urls=list(urls), agent=AGENT, **extra)
    return SoffidBackend("soffid", config)


def change(account: str = "jdoe", password: str = "N3w!Pass") -> Change:
    return Change(
        event_id=b"\x01" * 16,
        account=account,
        password=Secret(password),
        changed_at_ms=1_700_000_000_000,
    )


class TestSoffidContract(BackendContract):
    target_rejects = False  # a propagation is always queued; the policy shows in check()
    offers_check = True

    def make_fake(self) -> FakeTarget:
        return FakeSoffid(agent=AGENT)

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        return make(fake.url)


# --- pure protocol ---------------------------------------------------------------------------


def test_eris_quote_encodes_every_byte_outside_alnum_in_upper_hex() -> None:
    assert eris_quote("AD soffid.pat") == "AD%20soffid%2Epat"
    assert eris_quote("N3w!Pass") == "N3w%21Pass"
    assert eris_quote("a_b-c~d") == "a%5Fb%2Dc%7Ed"
    assert eris_quote("é€") == "%C3%A9%E2%82%AC"


def test_query_strings_match_the_eris_request_lines() -> None:
    assert (
        query_string("jdoe", Secret("N3w!Pass"), "AD soffid.pat", test=True)
        == "test=true&user=jdoe&password=N3w%21Pass&domain=AD%20soffid%2Epat"
    )
    assert (
        query_string("jdoe", Secret("N3w!Pass"), "AD soffid.pat", test=False)
        == "user=jdoe&password=N3w%21Pass&domain=AD%20soffid%2Epat"
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "step"),
    [
        (200, "ok", OutcomeKind.DELIVERED, "final"),
        (200, "", OutcomeKind.UNKNOWN_USER, "final"),
        (200, "<html>proxy</html>", OutcomeKind.FAILED, "final"),
        (500, "ERROR: java.lang.Exception: db", OutcomeKind.REJECTED, "next"),
        (502, "bad gateway", OutcomeKind.UNREACHABLE, "next"),
        (404, "not found", OutcomeKind.FAILED, "final"),
        (401, "", OutcomeKind.FAILED, "final"),
    ],
)
def test_propagation_answers_are_classified_strictly(
    status: int, body: str, kind: OutcomeKind, step: str
) -> None:
    answer = classify_propagation(status, body)
    assert (answer.outcome.kind, answer.step) == (kind, step)


def test_check_answers() -> None:
    assert classify_check(200, "OK").verdict is Verdict.ACCEPT  # type: ignore[union-attr]
    assert classify_check(200, "IGNORE").verdict is Verdict.ACCEPT  # type: ignore[union-attr]
    rejected = classify_check(200, "ERROR|Password too short")
    assert rejected is not None and rejected.verdict is Verdict.REJECT
    assert rejected.reason == "Password too short"
    assert classify_check(200, "whatever") is None
    assert classify_check(500, "ERROR: x") is None


# --- config ----------------------------------------------------------------------------------


def test_config_keeps_the_spec_keys_and_refuses_inline_secrets() -> None:
    config = SoffidConfig.model_validate(
        {
            "type": "soffid",
            "url": "https://sync.example.com:1760",
            "agent": "AD example",
            "auth": "basic",
            "username": "adsync",
            "password": "file:/etc/adsync/soffid.secret",
            "tls": {"ca_file": "/etc/adsync/soffid-ca.pem"},
            "concurrency": 4,
            "timeout": "10s",
        }
    )
    assert config.servers == ["https://sync.example.com:1760"]
    with pytest.raises(ValidationError, match="inline secrets"):
        SoffidConfig.model_validate(
            {
                "type": "soffid",
                "url": "https://s",
                "agent": "a",
                "auth": "basic",
                "username": "u",
                "password": "hunter2",
            }
        )


def test_config_refuses_plain_http_to_a_remote_host() -> None:
    with pytest.raises(ValidationError, match="use https"):
        SoffidConfig(type="soffid", url="http://sync.example.com:760", agent="a")
    SoffidConfig(type="soffid", url="http://sync.example.com:760", agent="a", allow_plain_http=True)


def test_config_needs_a_server() -> None:
    with pytest.raises(ValidationError, match="url or urls"):
        SoffidConfig(type="soffid", agent="a")


# --- over the wire ---------------------------------------------------------------------------


async def test_propagation_request_is_byte_for_byte_the_eris_request() -> None:
    async with FakeSoffid(agent=AGENT) as fake:
        backend = make(fake.url)
        await backend.start()
        try:
            outcome = await backend.deliver(change(password="N3w!Pass é"))
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
    (got,) = fake.received
    expected = "/propagatepass?user=jdoe&password=N3w%21Pass%20%C3%A9&domain=AD%20adsync%2Etest"
    assert got.target_sha256 == sha256_hex(expected)
    assert got.method == "GET" and got.operation == "propagate"
    assert got.password_sha256 == sha256_hex("N3w!Pass é")


async def test_check_request_has_test_true_first() -> None:
    async with FakeSoffid(agent=AGENT) as fake:
        backend = make(fake.url)
        await backend.start()
        try:
            result = await backend.check(Candidate(account="jdoe", password=Secret("x y")))
        finally:
            await backend.close()
    assert result.verdict is Verdict.ACCEPT
    expected = "/propagatepass?test=true&user=jdoe&password=x%20y&domain=AD%20adsync%2Etest"
    assert fake.received[0].target_sha256 == sha256_hex(expected)


async def test_policy_violation_rejects_with_soffid_reason() -> None:
    async with FakeSoffid(agent=AGENT) as fake:
        fake.reject("Password must have at least 12 characters")
        backend = make(fake.url)
        await backend.start()
        try:
            result = await backend.check(Candidate(account="jdoe", password=Secret("short")))
        finally:
            await backend.close()
    assert result.verdict is Verdict.REJECT
    assert result.reason == "Password must have at least 12 characters"


async def test_no_policy_accepts() -> None:
    async with FakeSoffid(agent=AGENT) as fake:
        fake.no_policy()
        backend = make(fake.url)
        await backend.start()
        try:
            result = await backend.check(Candidate(account="jdoe", password=Secret("p")))
        finally:
            await backend.close()
    assert result.verdict is Verdict.ACCEPT and "no Soffid password policy" in result.reason


async def test_two_servers_first_down_delivers_through_second() -> None:
    async with FakeSoffid(agent=AGENT) as first, FakeSoffid(agent=AGENT) as second:
        await first.go_down()
        backend = make(first.url, second.url)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
    assert second.url.split("//")[1] in outcome.reason
    assert len(second.received) == 1 and not first.received


async def test_internal_error_on_first_server_fails_over() -> None:
    async with FakeSoffid(agent=AGENT) as first, FakeSoffid(agent=AGENT) as second:
        first.internal_error()
        backend = make(first.url, second.url)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
    assert len(first.received) == 1 and len(second.received) == 1


async def test_internal_error_everywhere_is_counted_like_a_rejection_and_misconfigured() -> None:
    """A persistent ``500 ERROR:`` (a wrong agent name answers it forever) must not be
    retried silently until expire_after: counted against max_rejections, and the backend
    shows as misconfigured."""
    async with FakeSoffid(agent=AGENT) as fake:
        fake.internal_error()
        backend = make(fake.url)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.REJECTED and outcome.misconfigured, outcome
    assert "InternalErrorException" in outcome.reason and "agent name" in outcome.reason


async def test_unexpected_200_body_is_reported_not_failed_over() -> None:
    async with FakeSoffid(agent=AGENT) as first, FakeSoffid(agent=AGENT) as second:
        first.answer_body = "<html>Welcome to the proxy</html>"
        backend = make(first.url, second.url)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured, outcome
    assert "Welcome to the proxy" in outcome.reason
    assert len(first.received) == 1 and not second.received


async def test_no_authorization_header_unless_configured() -> None:
    async with FakeSoffid(agent=AGENT) as fake:
        backend = make(fake.url)
        await backend.start()
        try:
            await backend.deliver(change())
        finally:
            await backend.close()
    assert "Authorization" not in fake.received[0].headers


def test_credentials_without_auth_basic_are_refused() -> None:
    with pytest.raises(ValidationError, match="auth: basic"):
        SoffidConfig.model_validate(
            {"type": "soffid", "url": "https://s", "agent": "a", "username": "u",
             "password": "env:X"}
        )  # fmt: skip


async def test_wrong_agent_means_unknown_user() -> None:
    async with FakeSoffid(agent="another agent") as fake:
        backend = make(fake.url)
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.UNKNOWN_USER


async def test_basic_credentials_are_sent_when_configured(tmp_path: Any) -> None:
    secret = tmp_path / "soffid.secret"
    secret.write_text("s3cret\n")
    async with FakeSoffid(agent=AGENT) as fake:
        backend = make(fake.url, auth="basic", username="adsync", password=f"file:{secret}")
        await backend.start()
        try:
            await backend.deliver(change())
        finally:
            await backend.close()
    header = fake.received[0].headers["Authorization"]
    assert sha256_hex(header) == sha256_hex("Basic YWRzeW5jOnMzY3JldA==")


def server_tls(files: Any) -> ssl.SSLContext:
    """Like Soffid's connector: TLS, client certificate wanted but optional."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert_file, files.key_file)
    ctx.load_verify_locations(files.ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def test_https_with_ca_file_and_client_certificate(tmp_path: Path) -> None:
    files = make_self_signed(tmp_path)
    async with FakeSoffid(agent=AGENT, ssl_context=server_tls(files)) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        backend = make(
            fake.url,
            tls={
                "ca_file": files.ca_file,
                "cert_file": files.client_cert_file,
                "key_file": files.client_key_file,
            },
        )
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.DELIVERED
    assert fake.received[0].extra["client_cert"] is True


async def test_https_without_the_ca_is_not_trusted(tmp_path: Path) -> None:
    files = make_self_signed(tmp_path)
    async with FakeSoffid(agent=AGENT, ssl_context=server_tls(files)) as fake:
        backend = make(fake.url)  # system store: the test CA is unknown
        await backend.start()
        try:
            outcome = await backend.deliver(change())
        finally:
            await backend.close()
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert not fake.received


def test_a_2xx_other_than_200_is_never_delivered() -> None:
    answer = classify_propagation(204, "")
    assert answer.outcome.kind is OutcomeKind.FAILED and answer.outcome.misconfigured
