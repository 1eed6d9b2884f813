"""Soffid's back channel: the policy check and the propagation, with failover.

Interprets answers strictly (unlike the eris DLL, which counts any body as
success): only ``ok`` is delivered, an empty body means no such account.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp
import structlog
from yarl import URL

from adsync.plugin import (
    Backend,
    Candidate,
    Change,
    CheckResult,
    Outcome,
    Secret,
    check_time_left,
    resolve_secret,
    scrub,
)
from adsync.plugin.http import TRANSPORT_ERRORS, client_session, transport_outcome

from .config import SoffidConfig
from .protocol import PATH, classify_check, classify_propagation, eris_quote, query_string

log = structlog.get_logger("adsync.backends.soffid")

USER_AGENT = "adsync-soffid/1"


class SoffidBackend(Backend[SoffidConfig]):
    config_model = SoffidConfig

    def __init__(self, name: str, config: SoffidConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"User-Agent": USER_AGENT}
        self._secret: Secret | None = None

    async def start(self) -> None:
        if self.config.auth == "basic":
            assert self.config.username is not None and self.config.password is not None
            self._secret = resolve_secret(self.config.password)
            # Preemptive Basic, only when configured: Soffid ignores it (no constraint on
            # /propagatepass); a reverse proxy in front of the sync server may require it.
            token = base64.b64encode(f"{self.config.username}:{self._secret.reveal()}".encode())
            self._headers["Authorization"] = "Basic " + token.decode("ascii")
        self._session_or_new()

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(
                self.config.tls,
                timeout=self.config.timeout,
                limit=self.config.concurrency,
                headers=self._headers,
            )
        return self._session

    def _scrub(self, text: str, password: Secret) -> str:
        """A server might echo the password (in an exception text, eris-encoded in the
        query it quotes): never pass it on."""
        return scrub(text, password, eris_quote(password.reveal()), self._secret)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, server: str, query: str) -> URL:
        parts = urlsplit(server)
        # Like eris: only scheme, host and port of a configured URL count.
        return URL(f"{parts.scheme}://{parts.netloc}{PATH}?{query}", encoded=True)

    async def _get(self, server: str, query: str, budget: float) -> tuple[int, str]:
        session = self._session_or_new()
        async with asyncio.timeout(budget):
            async with session.get(self._url(server, query), allow_redirects=False) as resp:
                raw = await resp.read()
                return resp.status, raw.decode("utf-8", errors="replace")

    def _budgets(self, total: float) -> Iterator[tuple[str, float]]:
        """Each server in order with its share of what is left of ``total``.

        The dispatcher gives the whole delivery ``timeout`` seconds, a pre-check
        what is left of ``precheck.timeout``: a server that hangs must leave the
        next ones time to answer, or failover never happens.
        """
        servers = self.config.servers
        deadline = time.monotonic() + total
        for index, server in enumerate(servers):
            left = max(deadline - time.monotonic(), 0.001)
            yield server, left / (len(servers) - index)

    async def deliver(self, change: Change) -> Outcome:
        query = query_string(change.account, change.password, self.config.agent, test=False)
        last = Outcome.unreachable("no sync server configured")
        for server, budget in self._budgets(self.config.timeout):
            origin = _origin(server)
            try:
                status, body = await self._get(server, query, budget)
            except TRANSPORT_ERRORS as exc:
                failure = transport_outcome(exc, change.password, self._secret)
                last = dataclasses.replace(failure, reason=f"{origin}: {failure.reason}")
                log.info("soffid_server_unreachable", backend=self.name, server=origin)
                continue
            answer = classify_propagation(status, self._scrub(body, change.password))
            outcome = dataclasses.replace(
                answer.outcome, reason=f"{origin}: {answer.outcome.reason}"
            )
            if answer.step == "final":
                if outcome.misconfigured:
                    log.warning("soffid_answer_unexpected", backend=self.name, server=origin)
                return outcome
            last = outcome
            log.info("soffid_server_unusable", backend=self.name, server=origin, status=status)
        return last

    async def check(self, candidate: Candidate) -> CheckResult:
        query = query_string(candidate.account, candidate.password, self.config.agent, test=True)
        left = check_time_left()
        total = self.config.timeout if left is None else min(left, self.config.timeout)
        for server, budget in self._budgets(total):
            try:
                status, body = await self._get(server, query, budget)
            except TRANSPORT_ERRORS as exc:
                log.info(
                    "soffid_check_unreachable",
                    backend=self.name,
                    server=_origin(server),
                    error=type(exc).__name__,
                )
                continue
            result = classify_check(status, self._scrub(body, candidate.password))
            if result is not None:
                return result
        return CheckResult.undecided("no Soffid sync server answered the policy check")


def _origin(server: str) -> str:
    parts = urlsplit(server)
    return f"{parts.scheme}://{parts.netloc}"


__all__ = ["SoffidBackend", "SoffidConfig"]
