"""adsync.plugin.http: the one Retry-After parser, status and exception mapping, session."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

import aiohttp
import pytest

from adsync.plugin import OutcomeKind, Secret, TLSConfig
from adsync.plugin.http import (
    client_session,
    describe,
    parse_retry_after,
    status_outcome,
    transport_outcome,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Thu, 01 Jan 2026 12:01:30 GMT", 90.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),  # RFC 9110: delta-seconds is an integer
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("status", "kind", "misconfigured"),
    [
        (204, OutcomeKind.FAILED, True),  # not the protocol's answer: never delivered
        (408, OutcomeKind.UNREACHABLE, False),
        (429, OutcomeKind.UNREACHABLE, False),
        (503, OutcomeKind.UNREACHABLE, False),
        (401, OutcomeKind.FAILED, True),
        (403, OutcomeKind.FAILED, True),
        (404, OutcomeKind.FAILED, True),
        (400, OutcomeKind.FAILED, False),
    ],
)
def test_status_outcome(status: int, kind: OutcomeKind, misconfigured: bool) -> None:
    outcome = status_outcome(status, "login", retry_after=3.0)
    assert (outcome.kind, outcome.misconfigured) == (kind, misconfigured)
    assert outcome.reason.startswith(f"login: HTTP {status}")
    if kind is OutcomeKind.UNREACHABLE:
        assert outcome.retry_after == 3.0


def test_transport_errors_are_unreachable_and_scrubbed() -> None:
    outcome = transport_outcome(aiohttp.ClientPayloadError("body had s3cret-Pw in it"),
                                Secret("s3cret-Pw"))  # fmt: skip
    assert outcome.kind is OutcomeKind.UNREACHABLE and not outcome.misconfigured
    assert "s3cret-Pw" not in outcome.reason and "ClientPayloadError" in outcome.reason
    assert transport_outcome(TimeoutError()).reason == "timeout"


def test_tls_verification_failure_is_retried_but_marked_misconfigured() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    exc = aiohttp.ClientConnectorCertificateError(key, cause)
    outcome = transport_outcome(exc)
    assert outcome.kind is OutcomeKind.UNREACHABLE and outcome.misconfigured
    assert "tls.ca_file" in describe(exc)


def test_invalid_url_is_a_configuration_failure() -> None:
    outcome = transport_outcome(aiohttp.InvalidURL("not a url"))
    assert outcome.kind is OutcomeKind.FAILED and outcome.misconfigured


async def test_session_verifies_tls_and_ignores_proxy_environment() -> None:
    session = client_session(TLSConfig(), timeout=3.0, limit=2, headers={"X-A": "1"})
    try:
        assert session.trust_env is False
        assert session.headers["X-A"] == "1"
        assert session.timeout.total == 3.0
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector) and connector.limit == 2
    finally:
        await session.close()
