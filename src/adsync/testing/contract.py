"""The plugin contract kit, and the base every fake target of ``adsync.testing`` shares.

A plugin author subclasses ``BackendContract`` in a test module, says how to
build the backend for a fake's URL and how to start the fake, and pytest runs
the contract: outcome mapping (accepted, rejected, unknown user, unreachable and
back), cancellation under the dispatcher's timeout (no task left behind, the
backend still works afterwards), no password in logs or outcome reasons, and
``close()`` releasing every connection. Fakes are real aiohttp servers on
127.0.0.1; they speak their target's protocol and obey the ``FakeTarget``
controls, so a new plugin's fake only has to implement its protocol's handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import io
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from aiohttp import web

from adsync.plugin import Backend, Candidate, Change, Outcome, OutcomeKind, Secret, Verdict

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


# --- the contract ---------------------------------------------------------------------------


class BackendContract:
    """Subclass as ``class TestMyBackendContract(BackendContract)`` and fill in the hooks.

    Hooks: ``make_fake()`` returns an un-entered fake (a ``FakeTarget``), and
    ``make_backend(fake)`` the backend configured for it (not started). Set
    ``target_rejects = False`` for a target whose protocol cannot refuse a
    password synchronously (then that test is not part of your contract), and
    ``account`` to a user the fake knows, ``offers_check = True`` for a backend
    with a policy check (its fake's reject() then refuses candidates too).
    """

    account: ClassVar[str] = "jdoe"
    password: ClassVar[str] = "Pässwörd€1 <&>\"'"  # noqa: S105 (a test value)
    target_rejects: ClassVar[bool] = True
    offers_check: ClassVar[bool] = False
    object_guid: ClassVar[uuid.UUID | None] = None  # what the source sends (None: unknown)
    reject_reason: ClassVar[str] = "too similar to an old password"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.target_rejects:
            cls.test_contract_rejected = None  # type: ignore[assignment,method-assign]

    # hooks
    def make_fake(self) -> FakeTarget:
        raise NotImplementedError

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        raise NotImplementedError

    # helpers
    def change(self, password: str | None = None) -> Change:
        return Change(
            event_id=bytes(range(16)),
            account=self.account,
            password=Secret(password if password is not None else self.password),
            changed_at_ms=1_700_000_000_000,
            domain="ADSYNC",
            object_guid=self.object_guid,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[tuple[FakeTarget, Backend[Any]]]:
        async with self.make_fake() as fake:
            backend = self.make_backend(fake)
            await backend.start()
            try:
                yield fake, backend
            finally:
                await backend.close()

    def assert_no_password(self, text: str, what: str) -> None:
        leaked = self.password in text
        assert not leaked, f"the password appears in {what}"

    # the contract
    async def test_contract_delivered(self) -> None:
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.DELIVERED, outcome
                digests = fake.password_digests()
                assert sha256_hex(self.password) in digests, "the fake did not get the password"
                assert not fake.invalid, [r.problem for r in fake.invalid]
                self.assert_no_password(outcome.reason, "the outcome reason")
        self.assert_no_password(logs(), "the logs")

    async def test_contract_rejected(self) -> None:
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                fake.reject(self.reject_reason)
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.REJECTED, outcome
                assert self.reject_reason in outcome.reason, outcome
                self.assert_no_password(outcome.reason, "the outcome reason")
        self.assert_no_password(logs(), "the logs")

    async def test_contract_unknown_user(self) -> None:
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                fake.unknown_user()
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.UNKNOWN_USER, outcome
                self.assert_no_password(outcome.reason, "the outcome reason")
        self.assert_no_password(logs(), "the logs")

    async def test_contract_unreachable_then_delivered(self) -> None:
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                await fake.go_down()
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.UNREACHABLE, outcome
                self.assert_no_password(outcome.reason, "the outcome reason")
                await fake.come_back()
                again = await backend.deliver(self.change())
                assert again.kind is OutcomeKind.DELIVERED, again
        self.assert_no_password(logs(), "the logs")

    async def test_contract_cancellation_is_safe(self) -> None:
        """The dispatcher's timeout cancels deliver(): no task stays, the backend still works."""
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                before = asyncio.all_tasks()
                fake.stall()
                task = asyncio.ensure_future(backend.deliver(self.change()))
                arrival = asyncio.ensure_future(fake.wait_arrival())
                await asyncio.wait({task, arrival}, return_when=asyncio.FIRST_COMPLETED)
                arrival.cancel()
                assert not task.done(), f"deliver() returned against a stalled target: {task}"
                with contextlib.suppress(asyncio.CancelledError):
                    task.cancel()
                    await task
                assert task.cancelled(), "deliver() swallowed the cancellation"
                fake.release()
                for _ in range(20):
                    await asyncio.sleep(0)
                left = {t for t in asyncio.all_tasks() - before if not t.done()}
                left.discard(asyncio.current_task())
                ours = [t for t in left if "deliver" in repr(t.get_coro())]
                assert not ours, f"tasks left behind: {ours}"
                fake.received.clear()
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.DELIVERED, outcome
        self.assert_no_password(logs(), "the logs")

    async def test_contract_close_releases_connections(self) -> None:
        async with self.make_fake() as fake:
            backend = self.make_backend(fake)
            await backend.start()
            outcome = await backend.deliver(self.change())
            assert outcome.kind is OutcomeKind.DELIVERED, outcome
            await backend.close()
            for _ in range(50):
                if fake.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert fake.open_connections == 0, "close() left connections open"

    async def test_contract_policy_check(self) -> None:
        """Backends with a policy check: accept, reject with the target's reason, undecided."""
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                assert backend.offers_check is self.offers_check, "offers_check differs"
                if not self.offers_check:
                    return
                candidate = Candidate(account=self.account, password=Secret(self.password))
                assert (await backend.check(candidate)).verdict is Verdict.ACCEPT
                fake.reject(self.reject_reason)
                result = await backend.check(candidate)
                assert result.verdict is Verdict.REJECT, result
                assert self.reject_reason in result.reason
                self.assert_no_password(result.reason, "the verdict reason")
                await fake.go_down()
                assert (await backend.check(candidate)).verdict is Verdict.UNDECIDED
        self.assert_no_password(logs(), "the logs")


def outcome_summary(outcome: Outcome) -> str:
    """For assertion messages: kind and reason only."""
    return f"{outcome.kind.value}: {outcome.reason}"


__all__ = [
    "BackendContract",
    "FakeTarget",
    "Mode",
    "Received",
    "capture_all_logs",
    "outcome_summary",
    "sha256_hex",
]
