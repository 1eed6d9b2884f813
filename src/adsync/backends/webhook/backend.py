"""The webhook backend: POSTs a signed JSON body per change, classifies the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import aiohttp

from adsync.plugin import (
    Backend,
    BackendConfig,
    Candidate,
    Change,
    CheckResult,
    Outcome,
    Secret,
    resolve_secret,
)
from adsync.plugin.http import (
    TRANSPORT_ERRORS,
    client_session,
    describe,
    parse_retry_after,
    transport_outcome,
)

from .config import WebhookConfig
from .wire import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    change_body,
    check_body,
    check_result,
    delivery_outcome,
    reason_from_body,
    signature,
)

MAX_RESPONSE = 64 * 1024  # read at most this much of an answer (only for a reason)


class WebhookBackend(Backend[WebhookConfig]):
    """Generic HTTP target; see backends/webhook/README.md for the contract."""

    config_model: ClassVar[type[BackendConfig]] = WebhookConfig

    def __init__(self, name: str, config: WebhookConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._key: Secret | None = None

    @property
    def offers_check(self) -> bool:
        return self.config.check_url is not None

    async def start(self) -> None:
        self._key = resolve_secret(self.config.secret)
        # +2: policy checks must not wait behind a full lane of deliveries.
        self._session = client_session(
            self.config.tls, timeout=self.config.timeout, limit=self.config.concurrency + 2
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None, bytes]:
        assert self._session is not None and self._key is not None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._key.reveal_bytes(), body),
            **headers,
        }
        # Never follow a redirect: it would carry the password to another URL.
        async with self._session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as response:
            content = await response.content.read(MAX_RESPONSE)
            return response.status, response.headers.get("Retry-After"), content

    def _secrets(self, password: Secret) -> list[str]:
        return [password.reveal(), self._key.reveal() if self._key else ""]

    async def deliver(self, change: Change) -> Outcome:
        if self._session is None:
            return Outcome.failed("backend not started")
        try:
            status, retry_after, content = await self._post(
                self.config.url, change_body(change), {EVENT_ID_HEADER: change.event_id_hex}
            )
        except TRANSPORT_ERRORS as exc:
            return transport_outcome(exc, *self._secrets(change.password))
        if 200 <= status < 300:  # the common case: no header to read, nothing to scrub
            return delivery_outcome(status, None)
        wait = parse_retry_after(retry_after, datetime.now(UTC))
        reason = ""
        if status in (409, 422):
            reason = reason_from_body(content, self._secrets(change.password))
        return delivery_outcome(status, wait, reason)

    async def check(self, candidate: Candidate) -> CheckResult:
        if self._session is None or self.config.check_url is None:
            return CheckResult.undecided("no policy check configured")
        secrets = self._secrets(candidate.password)
        try:
            status, _, content = await self._post(self.config.check_url, check_body(candidate), {})
        except TRANSPORT_ERRORS as exc:
            return CheckResult.undecided(describe(exc, *secrets))
        reason = reason_from_body(content, secrets) if status == 422 else ""
        return check_result(status, reason)
