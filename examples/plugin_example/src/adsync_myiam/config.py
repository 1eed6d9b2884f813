# file: src/adsync_myiam/config.py
"""What operators write under `backends.NAME` with `type: myiam`."""

from __future__ import annotations

from pydantic import Field, model_validator

from adsync.plugin import BackendConfig, SecretRef, TLSConfig, check_target_url


class MyIamConfig(BackendConfig):
    url: str = Field(description="the MyIAM API, e.g. https://iam.example.com")
    token: SecretRef = Field(description="API token, as file:PATH or env:NAME")
    tls: TLSConfig = TLSConfig()
    allow_plain_http: bool = False

    @model_validator(mode="after")
    def _check_url(self) -> MyIamConfig:  # passwords travel here: https unless loopback
        check_target_url(self.url, allow_plain_http=self.allow_plain_http)
        return self
