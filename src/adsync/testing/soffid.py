"""A Soffid sync server's ``/propagatepass`` servlet, byte for byte.

Follows PropagatePasswordServlet.java (SoffidIAM/syncserver): GET only,
``text/plain; charset=UTF-8``, bare tokens without newline: ``OK`` / ``IGNORE`` /
``ERROR|<reason>`` in test mode, lower-case ``ok`` after a propagation, an
empty body when no account matches (or no ``domain`` was sent), and ``500
ERROR: <exception>`` on an internal error.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from aiohttp import web

from .fake import FakeTarget, Mode, sha256_hex

_TEXT = "text/plain; charset=UTF-8"


def parse_query(raw_query: str) -> dict[str, str]:
    """Decode the eris query (percent-encoded UTF-8) as the servlet container does."""
    params: dict[str, str] = {}
    for part in raw_query.split("&") if raw_query else []:
        key, _, value = part.partition("=")
        params[unquote_to_bytes(key).decode()] = unquote_to_bytes(value.replace("+", " ")).decode(
            "utf-8", errors="replace"
        )
    return params


class FakeSoffid(FakeTarget):
    """Knows the accounts in ``accounts`` on agent ``agent``; ``unknown_user()`` forgets them.

    ``internal_error()`` makes it answer ``500 ERROR: …`` like an InternalErrorException;
    ``no_policy()`` makes checks answer ``IGNORE``. ``policy`` is Soffid's password
    policy as a function ``(account, password) -> reason or None``: a check of a
    non-compliant password answers ``ERROR|<reason>`` (``reject()`` refuses every one).
    """

    def __init__(
        self, *, agent: str = "AD adsync.test", accounts: set[str] | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.agent = agent
        self.accounts = accounts if accounts is not None else {"jdoe"}
        self.failing = False
        self.policy_applies = True
        self.policy: Callable[[str, str], str | None] | None = None
        self.answer_body: str | None = None  # not Soffid: e.g. a proxy's page with 200

    def internal_error(self) -> None:
        self.failing = True

    def no_policy(self) -> None:
        self.policy_applies = False

    def accept(self) -> None:
        super().accept()
        self.failing = False

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/propagatepass", self._propagatepass)

    async def _propagatepass(self, request: web.Request) -> web.StreamResponse:
        await self.gate()
        params = parse_query(request.query_string)
        test = params.get("test") == "true"
        user = params.get("user")
        password = params.get("password")
        domain = params.get("domain")
        self.record(
            request,
            b"",
            account=user,
            password_sha256=sha256_hex(password) if password is not None else None,
            operation="check" if test else "propagate",
            extra={
                "domain": domain,
                "user_agent": request.headers.get("User-Agent"),
                "client_cert": bool(
                    request.transport and request.transport.get_extra_info("peercert")
                ),
            },
        )
        if self.answer_body is not None:
            return _text(self.answer_body)
        if self.failing:
            return _text(
                "ERROR: es.caib.seycon.ng.exception.InternalErrorException: database unavailable",
                status=500,
            )
        if domain is None:
            return _text("")
        known = (
            self.mode is not Mode.UNKNOWN_USER and domain == self.agent and user in self.accounts
        )
        if test:
            if not self.policy_applies:
                return _text("IGNORE")
            if self.mode is Mode.REJECT:
                return _text(f"ERROR|{self.reject_reason}")
            refusal = self.policy(user or "", password or "") if self.policy else None
            if refusal is not None:
                return _text(f"ERROR|{refusal}")
            return _text("OK")
        if not known:
            return _text("")  # the servlet writes nothing when no account matches
        # Soffid queues every propagation (its policy shows only in the check).
        return _text("ok")


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body.encode("utf-8"), headers={"Content-Type": _TEXT})


__all__ = ["FakeSoffid", "parse_query"]
