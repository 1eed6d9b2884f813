"""What operators write under ``backends.<name>`` for ``type: oim_spml``."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig, check_target_url

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
        check_target_url(self.url, allow_plain_http=self.allow_plain_http)
        return self
