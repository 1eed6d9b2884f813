# file: src/adsync_myiam/backend.py
"""The Backend: one session, one request per change."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from adsync.plugin import Backend, Change, Outcome, resolve_secret
from adsync.plugin.http import TRANSPORT_ERRORS, client_session, transport_outcome
from adsync_myiam.config import MyIamConfig
from adsync_myiam.protocol import classify


class MyIamBackend(Backend[MyIamConfig]):
    config_model = MyIamConfig

    async def start(self) -> None:  # no request here: the target may be down
        self._token = resolve_secret(self.config.token)
        self._session = client_session(
            self.config.tls,
            timeout=self.config.timeout,
            limit=self.config.concurrency,
            headers={"Authorization": f"Bearer {self._token.reveal()}"},
        )

    async def deliver(self, change: Change) -> Outcome:
        account = quote(change.account, safe="")
        url = f"{self.config.url.rstrip('/')}/api/v1/users/{account}/password"
        try:
            async with self._session.put(url, json={"password": change.password.reveal()}) as resp:
                body = await _json(resp)
                return classify(resp.status, body, resp.headers.get("Retry-After"), change.password)
        except TRANSPORT_ERRORS as exc:
            return transport_outcome(exc, change.password, self._token)

    async def close(self) -> None:
        await self._session.close()


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """The JSON object of an answer, or {} (an empty 204, an HTML error page)."""
    try:
        data = await resp.json(content_type=None)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
