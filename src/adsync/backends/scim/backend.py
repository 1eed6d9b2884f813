"""SCIM 2.0: find the user by ``userName``, then PATCH its ``password``.

The worked example of docs/plugins.md: config model, start/close, deliver
returning an Outcome for every answer, nothing that could print the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from adsync.plugin import Backend, Change, Outcome, Secret, resolve_secret
from adsync.plugin.http import (
    TRANSPORT_ERRORS,
    client_session,
    parse_retry_after,
    transport_outcome,
)

from .config import ScimConfig
from .protocol import (
    MEDIA_TYPE,
    classify_patch,
    find_id,
    patch_body,
    user_filter,
)

log = structlog.get_logger("adsync.backends.scim")


class ScimBackend(Backend[ScimConfig]):
    config_model = ScimConfig

    def __init__(self, name: str, config: ScimConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._token: Secret | None = None  # scrubbed from every error detail too
        self._base = config.url.rstrip("/")

    async def start(self) -> None:
        token = resolve_secret(self.config.token)  # read at start, never at config load
        self._token = token
        self._session = client_session(
            self.config.tls,
            timeout=self.config.timeout,
            limit=self.config.concurrency,
            headers={"Authorization": f"Bearer {token.reveal()}", "Accept": MEDIA_TYPE},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, change: Change) -> Outcome:
        if self._session is None:
            return Outcome.failed("backend not started")
        try:
            user_id, outcome = await self._find(self._session, change)
            if outcome is not None:
                return outcome
            assert user_id is not None
            url = f"{self._base}/Users/{quote(user_id, safe='')}"
            async with self._session.patch(
                url, data=patch_body(change.password), headers={"Content-Type": MEDIA_TYPE}
            ) as resp:
                return classify_patch(
                    resp.status,
                    await _json(resp),
                    change.password,
                    self._token,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
        except TRANSPORT_ERRORS as exc:
            log.info("scim_unreachable", backend=self.name, error=type(exc).__name__)
            return transport_outcome(exc, change.password, self._token)

    async def probe(self) -> Outcome:
        """``adsync doctor``'s check, no password involved and nothing written:
        ``GET /ServiceProviderConfig`` (RFC 7644 §4: the endpoint exists; often answered
        without a token), then ``GET /Users?count=0`` (§3.4.2.4: no resource returned) with
        the token. ``delivered`` means url, tenant and token are right."""
        if self._session is None:
            return Outcome.failed("backend not started")
        try:
            async with self._session.get(f"{self._base}/ServiceProviderConfig") as resp:
                discovery = resp.status
            async with self._session.get(f"{self._base}/Users", params={"count": "0"}) as resp:
                search = resp.status
        except TRANSPORT_ERRORS as exc:
            return transport_outcome(exc, self._token)
        if 404 in (discovery, search):
            return Outcome.configuration(
                "GET /ServiceProviderConfig 404: no SCIM endpoint at this url "
                "(it must be the SCIM base before /Users, tenant included)"
            )
        if search in (401, 403):
            return Outcome.configuration(f"GET /Users {search}: the token is refused")
        if search != 200:
            return Outcome.failed(f"GET /Users?count=0 answered {search}")
        return Outcome.delivered(
            "GET /ServiceProviderConfig and /Users?count=0 answer (token accepted)"
        )

    async def _find(
        self, session: aiohttp.ClientSession, change: Change
    ) -> tuple[str | None, Outcome | None]:
        params = {"filter": user_filter(self.config.match_attribute, change.account)}
        async with session.get(f"{self._base}/Users", params=params) as resp:
            return find_id(
                resp.status,
                await _json(resp),
                change.password,
                self._token,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None
