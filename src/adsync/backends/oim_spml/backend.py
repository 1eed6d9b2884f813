"""Oracle Identity Manager over SPML v2 (the AD password sync connector's exchange).

Step one searches the user whose ``match_attribute`` equals the sAMAccountName;
no match is unknown_user ("the user does not exist in OIM"). Step two sends
setPasswordRequest for the psoID found. OIM refusing the password is rejected
(the dispatcher counts it); OIM not answering is unreachable (not counted).
"""

from __future__ import annotations

import aiohttp
import structlog

from adsync.plugin import Backend, Change, Outcome, Secret, resolve_secret

from .config import OimSpmlConfig
from .protocol import (
    CONTENT_TYPE,
    NotXmlText,
    classify_search,
    classify_set_password,
    envelope,
    read_answer,
    search_request,
    set_password_request,
)

log = structlog.get_logger("adsync.backends.oim_spml")


class OimSpmlBackend(Backend[OimSpmlConfig]):
    config_model = OimSpmlConfig

    def __init__(self, name: str, config: OimSpmlConfig) -> None:
        super().__init__(name, config)
        self._session: aiohttp.ClientSession | None = None
        self._secret: Secret | None = None

    async def start(self) -> None:
        self._secret = resolve_secret(self.config.password)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=self.config.tls.client_context(), limit=self.config.concurrency
            ),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers={"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{self.config.soap_action}"'},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, body: str) -> tuple[int, bytes]:
        assert self._session is not None and self._secret is not None
        payload = envelope(self.config.username, self._secret, body)
        async with self._session.post(self.config.url, data=payload) as resp:
            return resp.status, await resp.read()

    async def deliver(self, change: Change) -> Outcome:
        if self._session is None:
            return Outcome.failed("backend not started")
        base_id = "adsync-" + change.event_id_hex
        try:
            search = search_request(
                base_id + "-search",
                self.config.match_attribute,
                change.account,
                self.config.target_id,
            )
            status, data = await self._call(search)
            answer = read_answer(data)
            if answer is None:
                return _not_soap(status)
            pso, outcome = classify_search(answer)
            if outcome is not None:
                return outcome
            assert pso is not None
            status, data = await self._call(
                set_password_request(base_id + "-setpw", pso, change.password)
            )
            answer = read_answer(data)
            if answer is None:
                return _not_soap(status)
            return _scrubbed(classify_set_password(answer), change.password)
        except NotXmlText as exc:
            return Outcome.failed(f"cannot be sent in XML: the account or password {exc}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("oim_unreachable", backend=self.name, error=type(exc).__name__)
            return Outcome.unreachable(type(exc).__name__)


def _not_soap(status: int) -> Outcome:
    if status >= 500 or status in (408, 429):
        return Outcome.unreachable(f"HTTP {status} without a SOAP answer")
    return Outcome.failed(f"HTTP {status} without a SOAP answer (check url)")


def _scrubbed(outcome: Outcome, password: Secret) -> Outcome:
    value = password.reveal()
    if value and value in outcome.reason:
        return type(outcome)(
            outcome.kind, outcome.reason.replace(value, "***"), outcome.retry_after
        )
    return outcome
