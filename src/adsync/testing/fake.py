"""The base every fake target of ``adsync.testing`` shares, and what a fake records.

Fakes are real aiohttp servers on 127.0.0.1; they speak their target's protocol and
obey the ``FakeTarget`` controls, so a new plugin's fake only implements its
protocol's handlers. This module needs no pytest: the demo runs fakes too
(``adsync.testing.contract`` is the pytest kit built on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import io
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

# --- what a fake received -------------------------------------------------------------------


def sha256_hex(value: str | bytes) -> str:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


@dataclass
class Received:
    """One request as the fake saw it. Raw parts hold the password: they never print."""

    method: str
    path: str
    account: str | None = None
    password_sha256: str | None = None
    operation: str = ""  # protocol-specific: "propagate", "check", "search", "setPassword", ...
    valid: bool = True
    problem: str = ""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    raw_target: str = field(default="", repr=False)  # path and query exactly as sent
    body: bytes = field(default=b"", repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def target_sha256(self) -> str:
        return sha256_hex(self.raw_target)

    @property
    def body_sha256(self) -> str:
        return sha256_hex(self.body)


class Mode(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    UNKNOWN_USER = "unknown_user"


# --- the base of every fake -----------------------------------------------------------------


class FakeTarget:
    """An aiohttp server on 127.0.0.1 (port 0) with the controls the contract kit uses.

    ``accept()``, ``reject(reason)``, ``unknown_user()`` set how the target answers;
    ``stall()`` holds every request until ``release()``; ``slow(seconds)`` delays
    answers; ``go_down()`` closes the listener and every open connection (as a
    stopped server would) and ``come_back()`` listens again on the same port.
    """

    scheme_default = "http"

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.mode = Mode.ACCEPT
        self.reject_reason = "password does not satisfy the policy"
        self.delay = 0.0
        self.arrived = 0  # requests that reached a handler (stalled ones included)
        self._arrival = asyncio.Event()
        self._ssl = ssl_context
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # controls
    def accept(self) -> None:
        self.mode = Mode.ACCEPT

    def reject(self, reason: str = "password does not satisfy the policy") -> None:
        self.mode = Mode.REJECT
        self.reject_reason = reason

    def unknown_user(self) -> None:
        self.mode = Mode.UNKNOWN_USER

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def serve_tls(self, context: ssl.SSLContext) -> FakeTarget:
        """Serve HTTPS with this server context (before ``async with``); ``url`` says https."""
        self._ssl = context
        return self

    def stall(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def wait_arrival(self) -> None:
        """Until some request reached a handler (for instance a stalled one)."""
        await self._arrival.wait()

    async def go_down(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def come_back(self) -> None:
        if self._runner is None:
            await self._listen(self._port)

    # inspection
    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def open_connections(self) -> int:
        if self._runner is None or self._runner.server is None:
            return 0
        return len(self._runner.server.connections)

    def password_digests(self, operation: str | None = None) -> list[str]:
        return [
            r.password_sha256
            for r in self.received
            if r.password_sha256 is not None and (operation is None or r.operation == operation)
        ]

    @property
    def invalid(self) -> list[Received]:
        return [r for r in self.received if not r.valid]

    # life cycle
    async def __aenter__(self) -> FakeTarget:
        await self._listen(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        await self.go_down()

    async def _listen(self, port: int) -> None:
        app = web.Application()
        self.routes(app)
        # access_log=None: request lines carry passwords (Soffid's query string).
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        if port == 0:
            self._port = int(runner.addresses[0][1])
        self._runner = runner

    async def gate(self) -> None:
        """Every handler calls this first: it applies stall() and slow()."""
        self.arrived += 1
        self._arrival.set()
        await self._open.wait()
        if self.delay:
            await asyncio.sleep(self.delay)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def record(self, request: web.Request, body: bytes, **fields: Any) -> Received:
        received = Received(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            raw_target=request.raw_path,
            body=body,
            **fields,
        )
        self.received.append(received)
        return received


# --- log capture ----------------------------------------------------------------------------


@contextlib.contextmanager
def capture_all_logs() -> Iterator[Callable[[], str]]:
    """Everything logged through structlog or stdlib logging meanwhile, as one text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as entries:
            yield lambda: stream.getvalue() + "\n" + repr(entries)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


__all__ = [
    "FakeTarget",
    "Mode",
    "Received",
    "capture_all_logs",
    "sha256_hex",
]
