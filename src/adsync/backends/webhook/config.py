"""The webhook backend's keys, on top of those every backend has."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig, check_target_url


def check_webhook_url(value: str) -> str:
    """https anywhere; plain http only to this machine (a password must not cross a network
    in clear); no credentials in the URL (they would end up in logs)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://host/path")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials; the HMAC secret authenticates adsync")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    check_target_url(value)  # plain http only to loopback
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


class WebhookConfig(BackendConfig):
    """A generic HTTPS endpoint: one signed JSON POST per change."""

    url: str = Field(description="where each change is POSTed (https, or http to loopback)")
    secret: SecretRef = Field(description="HMAC-SHA256 key for X-Adsync-Signature")
    check_url: str | None = Field(
        default=None, description="optional policy check endpoint (CHECK frames)"
    )
    tls: TLSConfig = TLSConfig()

    @field_validator("url", "check_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)
