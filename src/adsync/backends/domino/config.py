"""What operators write under ``backends.<name>`` for ``type: domino``.

Domino's native password-change request form is not public (and its password
item is encrypted to the Request Processors with Notes keys), so the request
document is an app-specific form in a database exposed through the Domino REST
API; its form and item names are configurable (docs/backends/domino.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from adsync.plugin import (
    BackendConfig,
    Duration,
    RetryConfig,
    SecretRef,
    StrictModel,
    TLSConfig,
    check_target_url,
)

_ITEM = r"^[A-Za-z_$][A-Za-z0-9_$]*$"

REQUEST_EXPIRATION_DEFAULT = 365 * 60.0  # Domino's "Request expiration (minutes)" default


class DominoRetryConfig(RetryConfig):
    """As every backend's, but requests expire after Domino's default 365 minutes."""

    expire_after: Duration = Field(default=REQUEST_EXPIRATION_DEFAULT, gt=0)


class DirectoryConfig(StrictModel):
    """Where the user is looked up by objectGUID (the Domino directory, via a DRAPI scope)."""

    scope: str = "names"
    form: str = "Person"
    guid_item: str = Field(default="ADObjectGUID", pattern=_ITEM)
    account_item: str | None = Field(default=None, pattern=_ITEM)  # fallback without a GUID


class RequestFields(StrictModel):
    guid: str = Field(default="ADObjectGUID", pattern=_ITEM)
    password: str = Field(default="NewPassword", pattern=_ITEM)
    password_types: str = Field(default="PasswordTypes", pattern=_ITEM)
    expires: str = Field(default="ExpiresAt", pattern=_ITEM)
    account: str = Field(default="SAMAccountName", pattern=_ITEM)
    event_id: str = Field(default="EventID", pattern=_ITEM)


class EncryptionConfig(StrictModel):
    """DRAPI's ``@encryption`` (v1.1.0+): whom the items marked **Encrypt** in the form
    mode's schema are encrypted for. ``users``: canonical names whose public keys are used
    (``CN=proc1/O=Org``: the ID the consuming agent runs with); ``keys``: named secret keys
    in the DRAPI user's ID. Both empty: encrypted for the DRAPI user only."""

    users: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)


class RequestConfig(StrictModel):
    """The request database (a DRAPI scope) and the form of a password-change request.

    ``encryption: null`` sends the password item in clear inside the database (for a
    Domino REST API before v1.1.0, or a form mode without the Encrypt option).
    """

    scope: str = "adpwsync"
    form: str = "ADPasswordChangeRequest"
    fields: RequestFields = RequestFields()
    encryption: EncryptionConfig | None = EncryptionConfig()


class DominoConfig(BackendConfig):
    """``servers``: the Request Processor servers' REST API base URLs, tried in order."""

    url: str | None = None
    servers: list[str] = Field(default_factory=list)
    username: str = Field(min_length=1)
    password: SecretRef
    sync: Literal["http", "notes_id", "http_and_notes_id"] = "http"
    directory: DirectoryConfig = DirectoryConfig()
    request: RequestConfig = RequestConfig()
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False
    retry: DominoRetryConfig = DominoRetryConfig()

    @model_validator(mode="after")
    def _servers(self) -> DominoConfig:
        if not self.server_urls:
            raise ValueError("give servers (or url): at least one Request Processor")
        for server in self.server_urls:
            check_target_url(server, allow_plain_http=self.allow_plain_http)
        return self

    @property
    def server_urls(self) -> list[str]:
        return ([self.url] if self.url else []) + list(self.servers)

    @property
    def password_types(self) -> list[str]:
        """As Domino's "Domino password types to sync": HTTP, Notes ID (vault), or both."""
        return {
            "http": ["HTTP"],
            "notes_id": ["NotesID"],
            "http_and_notes_id": ["HTTP", "NotesID"],
        }[self.sync]


_TYPES = {"http": ["HTTP"], "notes_id": ["NotesID"], "http_and_notes_id": ["HTTP", "NotesID"]}
