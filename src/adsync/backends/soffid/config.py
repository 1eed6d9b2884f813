"""What operators write under ``backends.<name>`` for ``type: soffid``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig, check_target_url


class SoffidConfig(BackendConfig):
    """``url`` (one server) or ``urls`` (several, tried in order: Soffid's ServerURL list).

    ``auth: basic`` sends ``username``/``password`` as a preemptive Basic header, for a
    reverse proxy in front of the sync server; Soffid itself ignores it (docs/backends).
    """

    url: str | None = None
    urls: list[str] = Field(default_factory=list)
    agent: str = Field(min_length=1, description="the Soffid agent (system) name of this domain")
    auth: Literal["none", "basic"] = "none"
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
        has_credentials = self.username is not None and self.password is not None
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.auth == "basic" and not has_credentials:
            raise ValueError("auth: basic needs username and password")
        if self.auth == "none" and has_credentials:
            raise ValueError(
                "username/password are sent only with auth: basic (for a proxy in front of "
                "Soffid; /propagatepass itself is unauthenticated)"
            )
        return self

    @property
    def servers(self) -> list[str]:
        return ([self.url] if self.url else []) + list(self.urls)
