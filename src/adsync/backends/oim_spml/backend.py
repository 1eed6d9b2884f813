"""Oracle Identity Manager over its SPML-DSML service (the AD password connector's exchange).

Step one searches the user whose ``match_attribute`` equals the sAMAccountName; no
match is unknown_user ("the user does not exist in OIM"). Step two sends
setPasswordRequest for the psoID found. OIM refusing the password is rejected (the
dispatcher counts it); OIM not answering is unreachable (not counted); a ``pending``
answer is polled with statusRequest while the delivery's time lasts, then retried.
Faults that retrying cannot fix (MustUnderstand, VersionMismatch, Client, bad
credentials) are ``failed`` and mark the backend misconfigured.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import structlog

from adsync.plugin import Backend, Change, Outcome, Secret, resolve_secret, scrub
from adsync.plugin.http import TRANSPORT_ERRORS, client_session, status_outcome, transport_outcome

from .config import OimSpmlConfig
from .protocol import (
    CONTENT_TYPE,
    NotXmlText,
    Pending,
    SpmlAnswer,
    classify_search,
    classify_set_password,
    classify_status,
    envelope,
    oim_user_header,
    read_answer,
    search_request,
    set_password_request,
    status_request,
    wss_header,
)

log = structlog.get_logger("adsync.backends.oim_spml")


class _Done(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class OimSpmlBackend(Backend[OimSpmlConfig]):
    config_model = OimSpmlConfig

    def __init__(self, name: str, config: OimSpmlConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._secret: Secret | None = None

    async def start(self) -> None:
        self._secret = resolve_secret(self.config.password)
        self._session = client_session(
            self.config.tls,
            timeout=self.config.timeout,
            limit=self.config.concurrency,
            headers={"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{self.config.soap_action}"'},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _header(self) -> str:
        assert self._secret is not None
        build = wss_header if self.config.auth == "wss_username_token" else oim_user_header
        return build(self.config.username, self._secret)

    async def _call(self, spml: str) -> SpmlAnswer:
        """One SOAP exchange; anything that is not an SPML answer or a fault ends the delivery."""
        assert self._session is not None
        async with self._session.post(self.config.url, data=envelope(self._header(), spml)) as resp:
            status, data = resp.status, await resp.read()
        answer = read_answer(data)
        if answer is None:
            raise _Done(status_outcome(status, "no SOAP answer"))
        return answer

    async def deliver(self, change: Change) -> Outcome:
        if self._session is None:
            return Outcome.failed("backend not started")
        # The dispatcher cancels at `timeout`: stop polling a pending request before that.
        deadline = time.monotonic() + self.config.timeout * 0.8
        base_id = "adsync-" + change.event_id_hex
        try:
            outcome = await self._deliver(change, base_id, deadline)
        except _Done as done:
            outcome = done.outcome
        except NotXmlText as exc:
            return Outcome.failed(f"cannot be sent in XML: the account or password {exc}")
        except TRANSPORT_ERRORS as exc:
            outcome = transport_outcome(exc, change.password, self._secret)
            log.info("oim_unreachable", backend=self.name, error=type(exc).__name__)
        return _scrubbed(outcome, change.password, self._secret)

    async def _deliver(self, change: Change, base_id: str, deadline: float) -> Outcome:
        cfg = self.config
        search = search_request(
            base_id + "-search", cfg.match_attribute, change.account, cfg.target_id, cfg.base_pso_id
        )
        pso, outcome = classify_search(await self._call(search))
        if outcome is not None:
            return outcome
        assert pso is not None
        request_id = base_id + "-setpw"
        answer = await self._call(set_password_request(request_id, pso, change.password))
        result = classify_set_password(answer, request_id)
        polls = 0
        while isinstance(result, Pending):
            if time.monotonic() + cfg.pending_poll >= deadline:
                return Outcome.unreachable(
                    f"OIM answered pending and had not finished after {polls} status "
                    "request(s); the password will be sent again"
                )
            await asyncio.sleep(cfg.pending_poll)
            polls += 1
            status = status_request(f"{base_id}-status{polls}", result.async_request_id)
            result = classify_status(await self._call(status), result.async_request_id)
        return result


def _scrubbed(outcome: Outcome, *secrets: Secret | None) -> Outcome:
    reason = scrub(outcome.reason, *secrets)
    if reason == outcome.reason:
        return outcome
    return Outcome(outcome.kind, reason, outcome.retry_after, outcome.misconfigured)
