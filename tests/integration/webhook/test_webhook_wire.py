"""The webhook wire rules without sockets: body bytes, signature, status mapping, Retry-After."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import pytest

from adsync.backends.webhook.config import check_webhook_url as check_target_url
from adsync.backends.webhook.wire import (
    MAX_REASON,
    change_body,
    check_body,
    check_result,
    delivery_outcome,
    iso_utc_ms,
    reason_from_body,
    signature,
)
from adsync.plugin import Candidate, Change, OutcomeKind, Secret, Verdict
from adsync.plugin.http import parse_retry_after
from adsync.secret import scrub

SPEC_BODY = (
    '{"event_id":"000102030405060708090a0b0c0d0e0f","account":"alice","domain":"ADSYNC",'
    '"password":"Pässwörd€1","changed_at":"2023-11-14T22:13:20.000Z",'
    '"source_host":"dc1","rid":1102,"object_guid":"abf599a2-49c1-4d58-afa1-7cf29a54d1a7"}'
).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_change(**overrides: object) -> Change:
    fields: dict[str, object] = {
        "event_id": bytes(range(16)),
        "account": "alice",
        "password": Secret("Pässwörd€1"),
        "changed_at_ms": 1_700_000_000_000,
        "domain": "ADSYNC",
        "source_host": "dc1",
        "rid": 1102,
        "object_guid": uuid.UUID("abf599a2-49c1-4d58-afa1-7cf29a54d1a7"),
    }
    fields.update(overrides)
    return Change(**fields)  # type: ignore[arg-type]


def test_body_is_the_spec_example_byte_for_byte() -> None:
    assert sha(change_body(spec_change())) == sha(SPEC_BODY)


def test_unknown_optional_fields_are_omitted() -> None:
    body = change_body(spec_change(source_host=None, rid=None, object_guid=None))
    expected = SPEC_BODY.split(b',"source_host"')[0] + b"}"
    assert sha(body) == sha(expected)


@pytest.mark.parametrize(
    ("epoch_ms", "text"),
    [
        (1_700_000_000_000, "2023-11-14T22:13:20.000Z"),
        (1_700_000_000_007, "2023-11-14T22:13:20.007Z"),
        (1_700_000_000_999, "2023-11-14T22:13:20.999Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_changed_at_is_utc_with_milliseconds(epoch_ms: int, text: str) -> None:
    assert iso_utc_ms(epoch_ms) == text


def test_signature_is_hmac_sha256_of_the_exact_bytes() -> None:
    key = b"k3y"
    expected = "sha256=" + hmac.new(key, SPEC_BODY, hashlib.sha256).hexdigest()
    assert signature(key, SPEC_BODY) == expected
    assert signature(key, SPEC_BODY + b" ") != expected


def test_check_body_fields() -> None:
    candidate = Candidate(
        account="bob", password=Secret("pw"), domain="D", full_name="Bob B", set_operation=True
    )
    expected = (
        b'{"account":"bob","domain":"D","password":"pw","full_name":"Bob B","set_operation":true}'
    )
    assert sha(check_body(candidate)) == sha(expected)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.DELIVERED),
        (202, OutcomeKind.DELIVERED),
        (204, OutcomeKind.DELIVERED),
        (299, OutcomeKind.DELIVERED),
        (404, OutcomeKind.UNKNOWN_USER),
        (409, OutcomeKind.REJECTED),
        (422, OutcomeKind.REJECTED),
        (408, OutcomeKind.UNREACHABLE),
        (429, OutcomeKind.UNREACHABLE),
        (500, OutcomeKind.UNREACHABLE),
        (503, OutcomeKind.UNREACHABLE),
        (599, OutcomeKind.UNREACHABLE),
        (100, OutcomeKind.FAILED),
        (301, OutcomeKind.FAILED),
        (307, OutcomeKind.FAILED),
        (400, OutcomeKind.FAILED),
        (401, OutcomeKind.FAILED),
        (403, OutcomeKind.FAILED),
        (410, OutcomeKind.FAILED),
    ],
)
def test_status_mapping(status: int, kind: OutcomeKind) -> None:
    outcome = delivery_outcome(status, None)
    assert outcome.kind is kind
    assert str(status) in outcome.reason


def test_retry_after_is_kept_for_retried_outcomes() -> None:
    assert delivery_outcome(503, 30.0).retry_after == 30.0
    assert delivery_outcome(429, 5.0).retry_after == 5.0
    assert delivery_outcome(422, 60.0).retry_after == 60.0


NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Mon, 01 Jan 2024 12:02:00 GMT", 120.0),
        ("Mon, 01 Jan 2024 11:00:00 GMT", 0.0),  # in the past: retry now
        (None, None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_scrub_removes_raw_and_encoded_secrets_and_truncates() -> None:
    pw = 'a"b c/é'
    json_form = pw.replace(chr(34), chr(92) + chr(34))
    text = f"raw {pw} json {json_form} url a%22b%20c%2F%C3%A9 plus a%22b+c%2F%C3%A9"
    cleaned = scrub(text, pw, max_len=MAX_REASON)
    assert cleaned == "raw *** json *** url *** plus ***"
    long = scrub("x" * 1000, pw, max_len=MAX_REASON)
    assert len(long) == 200
    assert scrub("line1\nline2\x00") == "line1 line2"
    assert scrub("was: two\nwords.", "two words") == "was: ***."


def test_reason_from_body() -> None:
    assert reason_from_body(b'{"reason": "too short: hunter2"}', ["hunter2"]) == "too short: ***"
    assert reason_from_body(b"<html>", ["x"]) == ""
    assert reason_from_body(b'["reason"]', ["x"]) == ""
    assert reason_from_body(b'{"reason": 5}', ["x"]) == ""


def test_check_result_mapping() -> None:
    assert check_result(200, "").verdict is Verdict.ACCEPT
    rejected = check_result(422, "history")
    assert (rejected.verdict, rejected.reason) == (Verdict.REJECT, "history")
    assert check_result(422, "").verdict is Verdict.REJECT
    for status in (201, 204, 400, 404, 500, 503):
        assert check_result(status, "").verdict is Verdict.UNDECIDED


@pytest.mark.parametrize(
    "url",
    [
        "https://hr.example.com/hook",
        "https://10.0.0.5:8443/x",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:8080/hook",
        "http://localhost/hook",
    ],
)
def test_urls_allowed(url: str) -> None:
    assert check_target_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hr.example.com/hook", "loopback"),
        ("http://10.0.0.5/hook", "loopback"),
        ("ftp://hr.example.com/", "http"),
        ("https:///nohost", "http"),
        ("https://user:pw@hr.example.com/", "credentials"),
        ("https://hr.example.com:99999/", "port"),
        ("https://hr.example.com/#frag", "fragment"),
    ],
)
def test_urls_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_target_url(url)
