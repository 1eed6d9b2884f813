"""HTTP for plugins: one session factory, one Retry-After parser, one status and one
exception mapping, so every HTTP backend answers the same situation the same way.

What is decided here (and only here):

* a session verifies TLS with the backend's ``tls`` (``TLSConfig.client_context()``),
  ignores proxy variables from the environment, never raises for a status, and caps
  connections at the backend's ``concurrency``;
* an unexpected 2xx is never taken as delivered (configuration problem);
* 408, 425, 429 and every 5xx are transient (``unreachable``, retried, not counted);
  401, 403, 404, 405 and 407 without a protocol answer mean the URL or the credentials
  are wrong (``failed``, misconfigured); other 4xx are ``failed``;
* a transport error is ``unreachable`` with a short reason naming what failed; a TLS
  verification failure is also marked misconfigured (retried: a certificate renewed on
  the target or a fixed ``tls.ca_file`` lets the queued changes through).

Modelled on httpx's ``_transports/default.py`` (one table from library exceptions to
meanings). Reasons are scrubbed with ``adsync.secret.scrub``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from adsync.secret import Secret, scrub

from . import Outcome, TLSConfig

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)
"""What ``except`` around a request catches; ``transport_outcome`` classifies it."""

AUTH_OR_URL_STATUSES = frozenset({401, 403, 404, 405, 407})


def client_session(
    tls: TLSConfig,
    *,
    timeout: float,
    limit: int,
    headers: Mapping[str, str] | None = None,
) -> aiohttp.ClientSession:
    """The session a backend opens in ``start()`` (and closes in ``close()``)."""
    connector = aiohttp.TCPConnector(ssl=tls.client_context(), limit=limit)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers=dict(headers or {}),
        trust_env=False,
        raise_for_status=False,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3). None when absent or unreadable; a date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_transient(status: int) -> bool:
    """The target (or a proxy before it) cannot answer now: try again later."""
    return status in (408, 425, 429) or 500 <= status <= 599


def status_outcome(status: int, what: str = "", *, retry_after: float | None = None) -> Outcome:
    """An answer the protocol gave no meaning of its own: transient, configuration, or failed.

    Never ``delivered``: a 2xx that is not the answer the protocol defines came from
    something else (a proxy, another service) and is a configuration problem.
    ``what`` names the step ("login", "search", ...); the reason is ``what: HTTP status``.
    """
    label = f"{what}: HTTP {status}" if what else f"HTTP {status}"
    if 200 <= status < 300:
        return Outcome.configuration(f"{label} without the expected answer (check url)")
    if is_transient(status):
        return Outcome.unreachable(label, retry_after)
    if status in AUTH_OR_URL_STATUSES:
        hint = "credentials" if status in (401, 403, 407) else "url"
        return Outcome.configuration(f"{label} (check {hint})")
    return Outcome.failed(label)


def _tls_verification(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return True
    cause = getattr(exc, "os_error", None) or exc.__cause__
    return isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        cause, ssl.SSLCertVerificationError
    )


def describe(exc: BaseException, *secrets: Secret | str | None) -> str:
    """A short, scrubbed reason for a transport error (the type, and what it says)."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if _tls_verification(exc):
        return "TLS certificate verification failed (check tls.ca_file and the server name)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: cannot connect to {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    detail = scrub(str(exc), *secrets, max_len=200)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def transport_outcome(exc: BaseException, *secrets: Secret | str | None) -> Outcome:
    """The outcome for an exception from ``TRANSPORT_ERRORS``."""
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.TooManyRedirects):
        return Outcome.configuration(describe(exc, *secrets) + " (check url)")
    return Outcome.unreachable(describe(exc, *secrets), misconfigured=_tls_verification(exc))


__all__ = [
    "AUTH_OR_URL_STATUSES",
    "TRANSPORT_ERRORS",
    "client_session",
    "describe",
    "is_transient",
    "parse_retry_after",
    "status_outcome",
    "transport_outcome",
]
