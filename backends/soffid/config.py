"""What operators write under ``backends.<name>`` for ``type: soffid``."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig


def check_target_url(value: str, *, allow_plain_http: bool) -> str:
    """An http(s) URL with a host; plain http only to loopback unless allowed."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if parts.scheme == "http" and not allow_plain_http and not _is_loopback(parts.hostname):
        raise ValueError(
            f"{value!r}: passwords travel in this request; use https "
            "(or set allow_plain_http: true)"
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """Verification on by default; the CA file replaces the system store when given."""
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SoffidConfig(BackendConfig):
    """``url`` (one server) or ``urls`` (several, tried in order: Soffid's ServerURL list)."""

    url: str | None = None
    urls: list[str] = Field(default_factory=list)
    agent: str = Field(min_length=1, description="the Soffid agent (system) name of this domain")
    username: str | None = None
    password: SecretRef | None = None
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False

    @field_validator("agent")
    @classmethod
    def _agent_text(cls, value: str) -> str:
        if value.strip() != value:
            raise ValueError("must not start or end with spaces")
        return value

    @model_validator(mode="after")
    def _servers(self) -> SoffidConfig:
        servers = self.servers
        if not servers:
            raise ValueError("give url or urls (at least one sync server)")
        for server in servers:
            check_target_url(server, allow_plain_http=self.allow_plain_http)
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def servers(self) -> list[str]:
        return ([self.url] if self.url else []) + list(self.urls)
