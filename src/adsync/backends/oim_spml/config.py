"""What operators write under ``backends.<name>`` for ``type: oim_spml``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from adsync.plugin import BackendConfig, Duration, SecretRef, TLSConfig, check_target_url

from .protocol import ATTRIBUTE_NAME

DEFAULT_PATH = "/spmlws/OIMProvisioning"


class OimSpmlConfig(BackendConfig):
    """``url`` is OIM's SPML-DSML service (``spml-dsml.ear``; on OIM 9.1 the "SPML Web
    Service"), e.g. ``https://oim.example.com:14000/spmlws/OIMProvisioning``.

    ``match_attribute`` is the OIM user attribute compared with the sAMAccountName, in
    OIM's own naming (``Users.User ID``). ``auth: oim_user`` (the default) sends the
    ``OIMUser`` header the service reads; ``wss_username_token`` is only for a service
    fronted by OWSM with a WS-Security policy.
    """

    url: str
    username: str = Field(min_length=1)
    password: SecretRef
    match_attribute: str = "Users.User ID"
    base_pso_id: str = ""
    target_id: str | None = None
    soap_action: str = ""
    auth: Literal["oim_user", "wss_username_token"] = "oim_user"
    pending_poll: Duration = Field(default=1.0, gt=0)
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False

    @field_validator("match_attribute")
    @classmethod
    def _attribute_name(cls, value: str) -> str:
        if not value.strip() or not ATTRIBUTE_NAME.match(value):
            raise ValueError(
                "must be a non-empty OIM attribute name (such as 'Users.User ID') without "
                "<, >, &, quotes or control characters"
            )
        return value

    @model_validator(mode="after")
    def _url(self) -> OimSpmlConfig:
        check_target_url(self.url, allow_plain_http=self.allow_plain_http)
        return self
