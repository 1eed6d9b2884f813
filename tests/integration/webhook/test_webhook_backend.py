"""The webhook backend against WebhookTarget over real loopback sockets (HTTP and HTTPS)."""

from __future__ import annotations

import hashlib
import hmac
import io
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adsync.backends.webhook import WebhookBackend, WebhookConfig
from adsync.observe.logs import configure_logging
from adsync.plugin import Candidate, Change, OutcomeKind, Secret, Verdict
from adsync.testing.contract import BackendContract, FakeTarget, sha256_hex
from adsync.testing.tls import TLSFiles, make_self_signed
from adsync.testing.webhook import DEFAULT_SECRET, WebhookTarget

PASSWORD = "Pässwörd€1 \"<&>' %2F"
SPEC_BODY = (
    '{"event_id":"000102030405060708090a0b0c0d0e0f","account":"alice","domain":"ADSYNC",'
    '"password":"Pässwörd€1","changed_at":"2023-11-14T22:13:20.000Z",'
    '"source_host":"dc1","rid":1102,"object_guid":"abf599a2-49c1-4d58-afa1-7cf29a54d1a7"}'
).encode()


def change(account: str = "alice", password: str = PASSWORD, **kw: Any) -> Change:
    fields: dict[str, Any] = {
        "event_id": bytes(range(16)),
        "account": account,
        "password": Secret(password),
        "changed_at_ms": 1_700_000_000_000,
        "domain": "ADSYNC",
    }
    fields.update(kw)
    return Change(**fields)


def absent(value: str, text: str) -> bool:
    return value not in text


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.secret"
    path.write_text(DEFAULT_SECRET + "\n", encoding="utf-8")
    return path


def make_backend(
    url: str, secret_file: Path, *, check_url: str | None = None, timeout: str = "5s", **extra: Any
) -> WebhookBackend:
    config = WebhookConfig.model_validate(
        {
            "type": "webhook",
            "url": url,
            "check_url": check_url,
            "secret": f"file:{secret_file}",
            "timeout": timeout,
            **extra,
        }
    )
    return WebhookBackend("hook", config)


@pytest.fixture
async def target() -> AsyncIterator[WebhookTarget]:
    async with WebhookTarget() as fake:
        yield fake


@pytest.fixture
async def backend(target: WebhookTarget, secret_file: Path) -> AsyncIterator[WebhookBackend]:
    hook = make_backend(target.url, secret_file, check_url=target.check_url)
    await hook.start()
    yield hook
    await hook.close()


async def test_exact_body_bytes_headers_and_signature(
    target: WebhookTarget, backend: WebhookBackend
) -> None:
    spec = change(
        password="Pässwörd€1",
        source_host="dc1",
        rid=1102,
        object_guid=uuid.UUID("abf599a2-49c1-4d58-afa1-7cf29a54d1a7"),
    )
    outcome = await backend.deliver(spec)
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    (delivery,) = target.deliveries
    assert delivery.body_sha256 == sha256_hex(SPEC_BODY)
    expected_sig = (
        "sha256=" + hmac.new(DEFAULT_SECRET.encode(), SPEC_BODY, hashlib.sha256).hexdigest()
    )
    assert delivery.headers["X-Adsync-Signature"] == expected_sig
    assert delivery.headers["X-Adsync-Event-Id"] == "000102030405060708090a0b0c0d0e0f"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.password_sha256 == sha256_hex("Pässwörd€1")
    assert (delivery.rid, delivery.object_guid, delivery.source_host) == (
        1102,
        "abf599a2-49c1-4d58-afa1-7cf29a54d1a7",
        "dc1",
    )
    assert not target.invalid


async def test_optional_fields_omitted(target: WebhookTarget, backend: WebhookBackend) -> None:
    outcome = await backend.deliver(change(changed_at_ms=1_700_000_000_042))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    (delivery,) = target.deliveries
    assert delivery.keys == ("event_id", "account", "domain", "password", "changed_at")
    assert delivery.changed_at == "2023-11-14T22:13:20.042Z"
    assert delivery.password_sha256 == sha256_hex(PASSWORD)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.DELIVERED),
        (204, OutcomeKind.DELIVERED),
        (404, OutcomeKind.UNKNOWN_USER),
        (409, OutcomeKind.REJECTED),
        (422, OutcomeKind.REJECTED),
        (408, OutcomeKind.UNREACHABLE),
        (429, OutcomeKind.UNREACHABLE),
        (500, OutcomeKind.UNREACHABLE),
        (503, OutcomeKind.UNREACHABLE),
        (400, OutcomeKind.FAILED),
        (403, OutcomeKind.FAILED),
        (307, OutcomeKind.FAILED),
    ],
)
async def test_status_mapping_over_the_wire(
    target: WebhookTarget, backend: WebhookBackend, status: int, kind: OutcomeKind
) -> None:
    target.respond(status)
    outcome = await backend.deliver(change())
    assert outcome.kind is kind, outcome
    assert len(target.received) == 1  # no redirect followed, no silent retry


async def test_per_account_answers_and_times(
    target: WebhookTarget, backend: WebhookBackend
) -> None:
    target.respond(404, account="ghost")
    target.respond(503, times=1)
    assert (await backend.deliver(change("alice"))).kind is OutcomeKind.UNREACHABLE
    assert (await backend.deliver(change("alice"))).kind is OutcomeKind.DELIVERED
    assert (await backend.deliver(change("ghost"))).kind is OutcomeKind.UNKNOWN_USER


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)],
)
async def test_retry_after_is_honoured(
    target: WebhookTarget, backend: WebhookBackend, header: str, seconds: float
) -> None:
    target.respond(503, retry_after=header)
    outcome = await backend.deliver(change())
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert outcome.retry_after == seconds


async def test_retry_after_http_date_in_the_future(
    target: WebhookTarget, backend: WebhookBackend
) -> None:
    target.respond(429, retry_after="Fri, 31 Dec 9999 23:59:59 GMT")
    outcome = await backend.deliver(change())
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert outcome.retry_after is not None and outcome.retry_after > 86400 * 365


async def test_rejection_reason_is_passed_on_without_the_password(
    target: WebhookTarget, backend: WebhookBackend
) -> None:
    target.respond(422, reason=f"password {PASSWORD} was used before")
    outcome = await backend.deliver(change())
    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.reason == "HTTP 422: password *** was used before"


async def test_timeout_is_unreachable(target: WebhookTarget, secret_file: Path) -> None:
    hook = make_backend(target.url, secret_file, timeout="200ms")
    await hook.start()
    try:
        target.stall()
        outcome = await hook.deliver(change())
    finally:
        target.release()
        await hook.close()
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert outcome.reason == "timeout"


async def test_connection_refused_is_unreachable(secret_file: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook = make_backend(f"http://127.0.0.1:{port}/hook", secret_file)
    await hook.start()
    try:
        outcome = await hook.deliver(change())
    finally:
        await hook.close()
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert "Connect" in outcome.reason


async def test_down_then_back(target: WebhookTarget, backend: WebhookBackend) -> None:
    assert (await backend.deliver(change())).kind is OutcomeKind.DELIVERED
    await target.go_down()
    assert (await backend.deliver(change())).kind is OutcomeKind.UNREACHABLE
    await target.come_back()
    assert (await backend.deliver(change())).kind is OutcomeKind.DELIVERED
    assert len(target.deliveries) == 2


async def test_wrong_secret_is_refused_by_the_target(target: WebhookTarget, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-key", encoding="utf-8")
    hook = make_backend(target.url, wrong)
    await hook.start()
    try:
        outcome = await hook.deliver(change())
    finally:
        await hook.close()
    assert outcome.kind is OutcomeKind.FAILED
    assert len(target.bad_signatures) == 1
    assert target.deliveries == []


async def test_not_started_fails_cleanly(target: WebhookTarget, secret_file: Path) -> None:
    hook = make_backend(target.url, secret_file)
    assert (await hook.deliver(change())).kind is OutcomeKind.FAILED


async def test_env_secret(target: WebhookTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSYNC_TEST_HOOK_KEY", DEFAULT_SECRET)
    config = WebhookConfig.model_validate(
        {"type": "webhook", "url": target.url, "secret": "env:ADSYNC_TEST_HOOK_KEY"}
    )
    hook = WebhookBackend("hook", config)
    await hook.start()
    try:
        assert (await hook.deliver(change())).kind is OutcomeKind.DELIVERED
    finally:
        await hook.close()
    assert not target.bad_signatures


# --- policy check ---------------------------------------------------------------------------


def candidate(password: str = PASSWORD, account: str = "alice") -> Candidate:
    return Candidate(
        account=account, password=Secret(password), domain="ADSYNC", full_name="Alice A"
    )


async def test_check_accept_and_fields(target: WebhookTarget, backend: WebhookBackend) -> None:
    assert backend.offers_check
    result = await backend.check(candidate())
    assert result.verdict is Verdict.ACCEPT
    (seen,) = target.checks
    assert seen.account == "alice"
    assert seen.password_sha256 == sha256_hex(PASSWORD)
    assert seen.extra == {
        "status": 200,
        "domain": "ADSYNC",
        "full_name": "Alice A",
        "set_operation": False,
    }


async def test_check_reject_with_reason_scrubbed(
    target: WebhookTarget, backend: WebhookBackend
) -> None:
    target.answer_check(422, reason=f"{PASSWORD} is in the breach list")
    result = await backend.check(candidate())
    assert result.verdict is Verdict.REJECT
    assert result.reason == "*** is in the breach list"


async def test_check_per_password_digest_and_account(
    target: WebhookTarget, backend: WebhookBackend
) -> None:
    target.answer_check(422, reason="too weak", password_sha256=sha256_hex("weak"))
    target.answer_check(503, account="bob")
    assert (await backend.check(candidate("weak"))).verdict is Verdict.REJECT
    assert (await backend.check(candidate("Str0ng-enough!"))).verdict is Verdict.ACCEPT
    assert (await backend.check(candidate(account="bob"))).verdict is Verdict.UNDECIDED


@pytest.mark.parametrize("status", [201, 400, 404, 500])
async def test_check_other_status_is_undecided(
    target: WebhookTarget, backend: WebhookBackend, status: int
) -> None:
    target.answer_check(status)
    assert (await backend.check(candidate())).verdict is Verdict.UNDECIDED


async def test_check_slow_or_down_is_undecided(target: WebhookTarget, secret_file: Path) -> None:
    hook = make_backend(target.url, secret_file, check_url=target.check_url, timeout="200ms")
    await hook.start()
    try:
        target.stall()
        slow = await hook.check(candidate())
        target.release()
        await target.go_down()
        down = await hook.check(candidate())
    finally:
        target.release()
        await hook.close()
    assert (slow.verdict, slow.reason) == (Verdict.UNDECIDED, "timeout")
    assert down.verdict is Verdict.UNDECIDED


async def test_no_check_url_offers_no_check(target: WebhookTarget, secret_file: Path) -> None:
    hook = make_backend(target.url, secret_file)
    assert not hook.offers_check


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_self_signed(tmp_path_factory.mktemp("tls"))


async def test_tls_verification_is_on_by_default(tls_files: TLSFiles, secret_file: Path) -> None:
    async with WebhookTarget(tls=tls_files) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        untrusting = make_backend(fake.url, secret_file)
        await untrusting.start()
        try:
            refused = await untrusting.deliver(change())
        finally:
            await untrusting.close()
        trusting = make_backend(fake.url, secret_file, tls={"ca_file": str(tls_files.ca_file)})
        await trusting.start()
        try:
            accepted = await trusting.deliver(change())
        finally:
            await trusting.close()
    assert refused.kind is OutcomeKind.UNREACHABLE
    assert "certificate" in refused.reason.lower()
    assert accepted.kind is OutcomeKind.DELIVERED, accepted
    assert len(fake.deliveries) == 1


async def test_mutual_tls(tls_files: TLSFiles, secret_file: Path) -> None:
    async with WebhookTarget(tls=tls_files, require_client_cert=True) as fake:
        without = make_backend(fake.url, secret_file, tls={"ca_file": str(tls_files.ca_file)})
        with_cert = make_backend(
            fake.url,
            secret_file,
            tls={
                "ca_file": str(tls_files.ca_file),
                "cert_file": str(tls_files.client_cert_file),
                "key_file": str(tls_files.client_key_file),
            },
        )
        outcomes = []
        for hook in (without, with_cert):
            await hook.start()
            try:
                outcomes.append(await hook.deliver(change()))
            finally:
                await hook.close()
    assert outcomes[0].kind is OutcomeKind.UNREACHABLE
    assert outcomes[1].kind is OutcomeKind.DELIVERED, outcomes[1]


# --- no password in outcomes or logs --------------------------------------------------------


async def test_no_password_in_any_outcome_reason_or_log(
    target: WebhookTarget, secret_file: Path
) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    reasons: list[str] = []
    hook = make_backend(target.url, secret_file, check_url=target.check_url, timeout="300ms")
    await hook.start()
    try:
        for status in (200, 404, 409, 422, 429, 500, 400):
            target.respond(status, reason=f"echo {PASSWORD}", retry_after=1)
            reasons.append((await hook.deliver(change())).reason)
        target.answer_check(422, reason=f"echo {PASSWORD}")
        reasons.append((await hook.check(candidate())).reason)
        await target.go_down()
        reasons.append((await hook.deliver(change())).reason)
        reasons.append((await hook.check(candidate())).reason)
    finally:
        await hook.close()
        configure_logging("info", "json", io.StringIO())
    joined = "\n".join(reasons)
    assert absent(PASSWORD, joined)
    assert absent(PASSWORD, stream.getvalue())
    assert absent(DEFAULT_SECRET, joined)


# --- the plugin contract kit ----------------------------------------------------------------


class TestWebhookContract(BackendContract):
    offers_check = True
    reject_reason = "too similar to an old password"

    def make_fake(self) -> FakeTarget:
        return WebhookTarget()

    def make_backend(self, fake: FakeTarget) -> WebhookBackend:
        assert isinstance(fake, WebhookTarget)
        import os

        os.environ["ADSYNC_CONTRACT_WEBHOOK_KEY"] = DEFAULT_SECRET
        config = WebhookConfig.model_validate(
            {
                "type": "webhook",
                "url": fake.url,
                "check_url": fake.check_url,
                "secret": "env:ADSYNC_CONTRACT_WEBHOOK_KEY",
            }
        )
        return WebhookBackend("hook", config)
