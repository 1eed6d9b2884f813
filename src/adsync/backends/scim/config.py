"""What operators write under ``backends.<name>`` for ``type: scim``."""

from __future__ import annotations

from pydantic import Field, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig, check_target_url


class ScimConfig(BackendConfig):
    """``url`` is the SCIM base (the part before ``/Users``)."""

    url: str
    token: SecretRef = Field(description="bearer token, as file:PATH or env:NAME")
    match_attribute: str = Field(default="userName", pattern=r"^[A-Za-z][\w.:$-]*$")
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False

    @model_validator(mode="after")
    def _url(self) -> ScimConfig:
        check_target_url(self.url, allow_plain_http=self.allow_plain_http)
        return self
