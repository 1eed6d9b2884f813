"""What operators write under ``backends.<name>`` for ``type: oim_spml``."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig

from .protocol import ATTRIBUTE_NAME


class OimSpmlConfig(BackendConfig):
    """``url`` is the SPML service endpoint (for example ``…/spml-xsd/SPMLService``).

    ``match_attribute`` is the OIM user attribute compared with the sAMAccountName
    in the DSML filter (an LDAP-style attribute name, as DSML v2 requires).
    """

    url: str
    username: str = Field(min_length=1)
    password: SecretRef
    match_attribute: str
    target_id: str | None = None
    soap_action: str = ""
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False

    @field_validator("match_attribute")
    @classmethod
    def _dsml_name(cls, value: str) -> str:
        if not ATTRIBUTE_NAME.match(value):
            raise ValueError(
                "must be an attribute name DSML v2 accepts (letters, digits, '-'; or an OID)"
            )
        return value

    @model_validator(mode="after")
    def _url(self) -> OimSpmlConfig:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {self.url!r} is not an http(s) URL with a host")
        if parts.scheme == "http" and not (self.allow_plain_http or _loopback(parts.hostname)):
            raise ValueError(
                "url: passwords travel in this request; use https (or allow_plain_http: true)"
            )
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
