"""A webhook receiver that checks everything adsync's webhook contract promises.

Every request's ``X-Adsync-Signature`` is verified (a bad one is recorded and answered
401); a delivery body must be exactly the contract's JSON (required fields, types,
``changed_at`` format, ``X-Adsync-Event-Id`` equal to the body's ``event_id``) or it is
recorded as invalid and answered 400. Passwords are kept as SHA-256 digests; the raw
body stays available (``Delivery.body``, never printed) for byte-level comparisons.

Controls beyond ``FakeTarget``'s (accept/reject/unknown_user/slow/stall/go_down):
``respond(status, account=…, retry_after=…, times=…)`` and ``delay_for(account, s)``
for deliveries, ``answer_check(status, reason=…, account=…, password_sha256=…,
delay=…)`` for the policy check endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .fake import FakeTarget, Mode, Received, sha256_hex
from .tls import TLSFiles

DEFAULT_SECRET = "webhook-test-hmac-key"  # noqa: S105 - the fake's default HMAC key
_CHANGED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_REQUIRED = {"event_id": str, "account": str, "domain": str, "password": str, "changed_at": str}
_OPTIONAL = {"source_host": str, "rid": int, "object_guid": str}
_CHECK_FIELDS = {
    "account": str,
    "domain": str,
    "password": str,
    "full_name": str,
    "set_operation": bool,
}


@dataclass(frozen=True)
class Delivery:
    """One accepted (2xx) delivery. ``body`` holds the password: compare ``body_sha256``."""

    event_id: str
    account: str
    domain: str
    password_sha256: str
    changed_at: str
    source_host: str | None
    rid: int | None
    object_guid: str | None
    keys: tuple[str, ...]  # the JSON keys in the order they were sent
    status: int
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)

    @property
    def body_sha256(self) -> str:
        return sha256_hex(self.body)


@dataclass
class _Rule:
    status: int
    retry_after: str | None = None
    times: int | None = None  # None: until cleared
    reason: str | None = None


@dataclass
class _CheckRule:
    status: int
    reason: str | None = None
    delay: float = 0.0


def server_ssl_context(files: TLSFiles, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(files.cert_file), str(files.key_file))
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(files.ca_file))
    return context


def _type_problems(
    data: dict[str, Any], required: Mapping[str, type], optional: Mapping[str, type]
) -> list[str]:
    problems = []
    for key in required:
        if key not in data:
            problems.append(f"missing {key}")
    for key, value in data.items():
        kind: type | None = required.get(key) or optional.get(key)
        if kind is None:
            problems.append(f"unexpected field {key}")
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{key} is not an integer")
        elif not isinstance(value, kind):
            problems.append(f"{key} is not a {kind.__name__}")
        elif value is None:
            problems.append(f"{key} is null")
    return problems


class WebhookTarget(FakeTarget):
    """A webhook endpoint on 127.0.0.1: ``url`` takes deliveries, ``check_url`` checks."""

    def __init__(
        self,
        secret: str | bytes = DEFAULT_SECRET,
        *,
        tls: TLSFiles | None = None,
        require_client_cert: bool = False,
    ) -> None:
        context = server_ssl_context(tls, require_client_cert=require_client_cert) if tls else None
        super().__init__(ssl_context=context)
        self.key = secret.encode("utf-8") if isinstance(secret, str) else secret
        self.deliveries: list[Delivery] = []
        self._rules: dict[str | None, _Rule] = {}
        self._delays: dict[str, float] = {}
        self._check_rules: dict[tuple[str, str], _CheckRule] = {}
        self._delivered = asyncio.Event()

    # --- addresses -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return super().url

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    @property
    def check_url(self) -> str:
        return f"{self.base_url}/check"

    # --- controls ------------------------------------------------------------------------

    def respond(
        self,
        status: int,
        *,
        account: str | None = None,
        retry_after: str | int | None = None,
        times: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Answer deliveries (for ``account``, or all) with ``status``; ``times`` then back
        to normal. ``reason`` is sent as ``{"reason": …}``."""
        self._rules[account] = _Rule(
            status, None if retry_after is None else str(retry_after), times, reason
        )

    def clear_responses(self) -> None:
        self._rules.clear()
        self._check_rules.clear()
        self._delays.clear()

    def delay_for(self, account: str, seconds: float) -> None:
        """Answer deliveries for ``account`` only after ``seconds``."""
        self._delays[account] = seconds

    def answer_check(
        self,
        status: int,
        *,
        reason: str | None = None,
        account: str | None = None,
        password_sha256: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """How the check endpoint answers: 200 accept, 422 reject (with ``reason``),
        anything else undecided; for one password digest, one account, or all."""
        if password_sha256 is not None:
            key = ("password", password_sha256)
        elif account is not None:
            key = ("account", account)
        else:
            key = ("all", "")
        self._check_rules[key] = _CheckRule(status, reason, delay)

    # --- inspection ----------------------------------------------------------------------

    @property
    def bad_signatures(self) -> list[Received]:
        return [r for r in self.received if r.problem == "bad signature"]

    @property
    def checks(self) -> list[Received]:
        return [r for r in self.received if r.operation == "check"]

    async def wait_for_deliveries(self, count: int, within: float = 10.0) -> list[Delivery]:
        """Until at least ``count`` deliveries were accepted (TimeoutError otherwise)."""
        async with asyncio.timeout(within):
            while len(self.deliveries) < count:
                self._delivered.clear()
                await self._delivered.wait()
        return list(self.deliveries)

    # --- the server ----------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/check", self._check)

    def _signed(self, request: web.Request, body: bytes) -> bool:
        expected = "sha256=" + hmac.new(self.key, body, hashlib.sha256).hexdigest()
        got = request.headers.get("X-Adsync-Signature", "")
        return hmac.compare_digest(expected.encode(), got.encode())

    @staticmethod
    def _parse(body: bytes, request: web.Request) -> tuple[dict[str, Any] | None, str]:
        if request.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return None, "Content-Type is not application/json"
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, "body is not UTF-8 JSON"
        if not isinstance(data, dict):
            return None, "body is not a JSON object"
        return data, ""

    def _refuse(
        self, request: web.Request, body: bytes, operation: str, problem: str, status: int
    ) -> web.Response:
        self.record(
            request,
            body,
            operation=operation,
            valid=False,
            problem=problem,
            extra={"status": status},
        )
        return web.json_response({"error": problem}, status=status)

    async def _hook(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        if not self._signed(request, body):
            return self._refuse(request, body, "deliver", "bad signature", 401)
        data, problem = self._parse(body, request)
        if data is None:
            return self._refuse(request, body, "deliver", problem, 400)
        problems = _type_problems(data, _REQUIRED, _OPTIONAL)
        if not problems:
            if not _EVENT_ID.match(data["event_id"]):
                problems.append("event_id is not 32 lower-case hex digits")
            if not _CHANGED_AT.match(data["changed_at"]):
                problems.append("changed_at is not YYYY-MM-DDTHH:MM:SS.mmmZ")
            if "object_guid" in data and not _GUID.match(data["object_guid"]):
                problems.append("object_guid is not a lower-case GUID")
            if request.headers.get("X-Adsync-Event-Id") != data["event_id"]:
                problems.append("X-Adsync-Event-Id differs from the body's event_id")
        if problems:
            return self._refuse(request, body, "deliver", "; ".join(problems), 400)
        account: str = data["account"]
        if self._delays.get(account):
            await asyncio.sleep(self._delays[account])
        status, headers, answer = self._delivery_answer(account)
        digest = sha256_hex(data["password"])
        self.record(
            request,
            body,
            operation="deliver",
            account=account,
            password_sha256=digest,
            extra={"status": status, "event_id": data["event_id"]},
        )
        if 200 <= status < 300:
            self.deliveries.append(
                Delivery(
                    event_id=data["event_id"],
                    account=account,
                    domain=data["domain"],
                    password_sha256=digest,
                    changed_at=data["changed_at"],
                    source_host=data.get("source_host"),
                    rid=data.get("rid"),
                    object_guid=data.get("object_guid"),
                    keys=tuple(data),
                    status=status,
                    body=body,
                    headers=dict(request.headers),
                )
            )
            self._delivered.set()
        return web.json_response(answer, status=status, headers=headers)

    def _delivery_answer(self, account: str) -> tuple[int, dict[str, str], dict[str, str]]:
        rule_key = account if account in self._rules else None
        rule = self._rules.get(rule_key)
        if rule is not None:
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    del self._rules[rule_key]
            headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
            return rule.status, headers, ({"reason": rule.reason} if rule.reason else {})
        if self.mode is Mode.REJECT:
            return 422, {}, {"reason": self.reject_reason}
        if self.mode is Mode.UNKNOWN_USER:
            return 404, {}, {"reason": "no such account"}
        return 200, {}, {}

    async def _check(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        if not self._signed(request, body):
            return self._refuse(request, body, "check", "bad signature", 401)
        data, problem = self._parse(body, request)
        if data is None:
            return self._refuse(request, body, "check", problem, 400)
        problems = _type_problems(data, _CHECK_FIELDS, {})
        if problems:
            return self._refuse(request, body, "check", "; ".join(problems), 400)
        digest = sha256_hex(data["password"])
        rule = (
            self._check_rules.get(("password", digest))
            or self._check_rules.get(("account", data["account"]))
            or self._check_rules.get(("all", ""))
        )
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None:
            status, reason = rule.status, rule.reason
        elif self.mode is Mode.REJECT:
            status, reason = 422, self.reject_reason
        else:
            status, reason = 200, None
        self.record(
            request,
            body,
            operation="check",
            account=data["account"],
            password_sha256=digest,
            extra={
                "status": status,
                "domain": data["domain"],
                "full_name": data["full_name"],
                "set_operation": data["set_operation"],
            },
        )
        return web.json_response({"reason": reason} if reason else {}, status=status)

    async def __aenter__(self) -> WebhookTarget:
        await super().__aenter__()
        return self


__all__ = ["DEFAULT_SECRET", "Delivery", "WebhookTarget", "server_ssl_context"]
