"""HCL Domino AD password sync over the Domino REST API.

For each Request Processor in order: log in (bearer), find the Person whose
objectGUID item matches (no match: unknown_user, and stop, as Domino does),
create the password-change request document. A server that does not answer
(or answers 5xx) hands over to the next one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from adsync.plugin import Backend, Change, Outcome, Secret, resolve_secret
from adsync.plugin.http import TRANSPORT_ERRORS, client_session, transport_outcome

from .config import DominoConfig
from .protocol import (
    AUTH_PATH,
    DOCUMENT_PATH,
    QUERY_PATH,
    auth_body,
    classify_error,
    directory_query,
    guid_text,
    query_body,
    request_document,
)

log = structlog.get_logger("adsync.backends.domino")
JSON = {"Content-Type": "application/json"}


class _Next(Exception):
    """This server cannot take the request now: try the next one."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class _Stop(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class DominoBackend(Backend[DominoConfig]):
    config_model = DominoConfig

    def __init__(self, name: str, config: DominoConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._secret: Secret | None = None
        self._bearers: dict[str, tuple[str, float]] = {}  # server -> (token, valid until)

    async def start(self) -> None:
        self._secret = resolve_secret(self.config.password)
        self._session = client_session(
            self.config.tls, timeout=self.config.timeout, limit=self.config.concurrency
        )

    async def close(self) -> None:
        self._bearers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, change: Change) -> Outcome:
        if self._session is None:
            return Outcome.failed("backend not started")
        last = Outcome.unreachable("no Request Processor configured")
        servers = self.config.server_urls
        # The dispatcher gives the whole delivery `timeout` seconds: each server gets its
        # share of what is left, so one that hangs leaves the next ones time to answer.
        deadline = time.monotonic() + self.config.timeout
        for index, server in enumerate(servers):
            base = server.rstrip("/")
            origin = _origin(server)
            budget = max(deadline - time.monotonic(), 0.001) / (len(servers) - index)
            try:
                async with asyncio.timeout(budget):
                    return await self._deliver_via(base, origin, change)
            except _Stop as stop:
                return stop.outcome
            except _Next as nxt:
                last = nxt.outcome
            except TRANSPORT_ERRORS as exc:
                failure = transport_outcome(exc, change.password, self._secret)
                last = dataclasses.replace(failure, reason=f"{origin}: {failure.reason}")
            log.info("domino_server_unusable", backend=self.name, server=origin)
        return last

    async def _deliver_via(self, base: str, origin: str, change: Change) -> Outcome:
        guid = await self._find_guid(base, origin, change)
        body = request_document(
            self.config,
            guid,
            change.account,
            change.event_id_hex,
            change.password,
            change.changed_at,
        )
        url = f"{base}{DOCUMENT_PATH}"
        params = {"dataSource": self.config.request.scope}
        status, document = await self._authorized("POST", base, origin, url, params, body)
        if status == 200 and isinstance(document, dict):
            unid = (document.get("@meta") or {}).get("unid")
            if isinstance(unid, str) and unid:
                return Outcome.delivered(f"{origin}: request {unid}")
        if status == 200:
            raise _Stop(Outcome.failed(f"{origin}: the created document has no @meta.unid"))
        self._raise(status, document, f"{origin} create request")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find_guid(self, base: str, origin: str, change: Change) -> str:
        by_account = change.object_guid is None
        if by_account and self.config.directory.account_item is None:
            raise _Stop(
                Outcome.failed(
                    "the source sent no objectGUID; set directory.account_item to look users up "
                    "by sAMAccountName"
                )
            )
        value = change.account if by_account else str(change.object_guid)
        url = f"{base}{QUERY_PATH}"
        params = {"dataSource": self.config.directory.scope, "action": "execute"}
        body = query_body(directory_query(self.config, by_account=by_account), value)
        status, documents = await self._authorized("POST", base, origin, url, params, body)
        if status != 200:
            self._raise(status, documents, f"{origin} directory lookup")
        if not isinstance(documents, list):
            raise _Stop(Outcome.failed(f"{origin}: the directory query answer is not a list"))
        if not documents:
            raise _Stop(
                Outcome.unknown_user(
                    "no Person in the Domino directory has this "
                    + ("account" if by_account else "objectGUID")
                )
            )
        if len(documents) > 1:
            raise _Stop(Outcome.failed(f"{len(documents)} Person documents match; expected one"))
        if not by_account:
            return value
        guid = guid_text(documents[0].get(self.config.directory.guid_item))
        if guid is None:
            raise _Stop(Outcome.unknown_user("the Person document has no objectGUID"))
        return guid

    def _raise(self, status: int, document: Any, what: str) -> None:
        try_next, outcome = classify_error(status, document, what)
        raise (_Next(outcome) if try_next else _Stop(outcome))

    async def _authorized(
        self, method: str, base: str, origin: str, url: str, params: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """One DRAPI call with the server's bearer; a 401 renews the bearer once."""
        assert self._session is not None
        for attempt in (1, 2):
            token = await self._bearer(base, origin, renew=attempt == 2)
            headers = {**JSON, "Authorization": f"Bearer {token}"}
            async with self._session.request(
                method, url, params=params, data=body, headers=headers
            ) as resp:
                document = await _json(resp)
                if resp.status != 401 or attempt == 2:
                    return resp.status, document
        raise AssertionError("unreachable")  # pragma: no cover

    async def _bearer(self, base: str, origin: str, *, renew: bool) -> str:
        cached = self._bearers.get(base)
        if cached and not renew and cached[1] > time.monotonic():
            return cached[0]
        assert self._session is not None and self._secret is not None
        async with self._session.post(
            f"{base}{AUTH_PATH}",
            data=auth_body(self.config.username, self._secret),
            headers=JSON,
        ) as resp:
            document = await _json(resp)
        if resp.status != 200 or not isinstance(document, dict) or "bearer" not in document:
            if resp.status == 401:
                raise _Stop(Outcome.configuration(f"{origin} login: invalid credentials"))
            self._raise(resp.status, document, f"{origin} login")
        lifetime = float(document.get("expSeconds", 300)) - float(document.get("leeway", 5))
        token = str(document["bearer"])
        self._bearers[base] = (token, time.monotonic() + max(lifetime, 0.0))
        return token


def _origin(server: str) -> str:
    parts = urlsplit(server)
    return f"{parts.scheme}://{parts.netloc}"


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None
