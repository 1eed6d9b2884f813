"""What operators write under ``backends.<name>`` for ``type: scim``."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig


class ScimConfig(BackendConfig):
    """``url`` is the SCIM base (the part before ``/Users``)."""

    url: str
    token: SecretRef = Field(description="bearer token, as file:PATH or env:NAME")
    match_attribute: str = Field(default="userName", pattern=r"^[A-Za-z][\w.:$-]*$")
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False

    @model_validator(mode="after")
    def _url(self) -> ScimConfig:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {self.url!r} is not an http(s) URL with a host")
        if parts.scheme == "http" and not (self.allow_plain_http or _loopback(parts.hostname)):
            raise ValueError("url: passwords travel in this request; use https")
        return self


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
