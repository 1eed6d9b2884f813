"""The plugin contract kit: a pytest base class that checks a backend against a fake target.

A plugin author subclasses ``BackendContract`` in a test module, says how to
start the fake (``make_fake``) and how to build the backend for it
(``make_backend``), and pytest runs the contract against real loopback sockets:
outcome mapping (accepted, rejected, unknown user, unreachable and back),
cancellation under the dispatcher's timeout, TLS verification left on (a target
whose certificate nobody told the plugin to trust gets no password), no password
in logs or outcome reasons, ``close()`` releasing every connection, and no task
of any name left running after ``close()``.

Every test carries its own ``pytest.mark.asyncio``: the kit works in a project
with pytest-asyncio's default (strict) mode, no ``asyncio_mode = auto`` needed.
Running it needs the ``testing`` extra (pytest, pytest-asyncio); without pytest the
module still imports (a production install imports every module) and marks nothing.
The fakes' base (``FakeTarget``) lives in ``adsync.testing.fake`` (no pytest
there: the demo runs fakes too) and is re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, TypeVar

from adsync.plugin import Backend, Candidate, Change, Outcome, OutcomeKind, Secret, Verdict
from adsync.testing.fake import FakeTarget, Mode, Received, capture_all_logs, sha256_hex
from adsync.testing.tls import make_self_signed

_Test = TypeVar("_Test", bound=Callable[..., Any])


def asyncio_test(test: _Test) -> _Test:
    """pytest-asyncio's mark on one contract test; without pytest there is no run to mark."""
    try:
        import pytest
    except ImportError:
        return test
    marked: _Test = pytest.mark.asyncio(test)
    return marked


async def assert_no_task_left(before: set[asyncio.Task[Any]], what: str) -> None:
    """Fail when a task started since ``before`` is still running (any name, any origin)."""
    left: list[asyncio.Task[Any]] = []
    for _ in range(100):
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if not left:
            return
        await asyncio.sleep(0.01)
    names = ", ".join(f"{t.get_name()} ({t.get_coro()!r})" for t in left)
    raise AssertionError(f"tasks still running after {what}: {names}")


def untrusted_server_context(directory: str) -> ssl.SSLContext:
    """A server context with a fresh certificate from a CA that exists nowhere else."""
    files = make_self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    return context


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
    async def running(
        self, fake: FakeTarget | None = None
    ) -> AsyncIterator[tuple[FakeTarget, Backend[Any]]]:
        """A started fake and backend; afterwards (backend closed, fake stopped) no task
        started meanwhile may still run."""
        before = asyncio.all_tasks()
        async with fake or self.make_fake() as entered:
            backend = self.make_backend(entered)
            await backend.start()
            try:
                yield entered, backend
            finally:
                await backend.close()
        await assert_no_task_left(before, "close() and the fake's shutdown")

    def assert_no_password(self, text: str, what: str) -> None:
        leaked = self.password in text
        assert not leaked, f"the password appears in {what}"

    # the contract
    @asyncio_test
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

    @asyncio_test
    async def test_contract_rejected(self) -> None:
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                fake.reject(self.reject_reason)
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.REJECTED, outcome
                assert self.reject_reason in outcome.reason, outcome
                self.assert_no_password(outcome.reason, "the outcome reason")
        self.assert_no_password(logs(), "the logs")

    @asyncio_test
    async def test_contract_unknown_user(self) -> None:
        with capture_all_logs() as logs:
            async with self.running() as (fake, backend):
                fake.unknown_user()
                outcome = await backend.deliver(self.change())
                assert outcome.kind is OutcomeKind.UNKNOWN_USER, outcome
                self.assert_no_password(outcome.reason, "the outcome reason")
        self.assert_no_password(logs(), "the logs")

    @asyncio_test
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

    @asyncio_test
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

    @asyncio_test
    async def test_contract_close_releases_connections(self) -> None:
        """After close() the fake has no open connection and the plugin no running task."""
        before = asyncio.all_tasks()
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
            await assert_no_task_left(before, "close()")

    @asyncio_test
    async def test_contract_tls_verification_stays_on(self) -> None:
        """A target whose certificate the plugin was not told to trust gets no password."""
        with tempfile.TemporaryDirectory() as tmp, capture_all_logs() as logs:
            fake = self.make_fake().serve_tls(untrusted_server_context(tmp))
            async with self.running(fake) as (fake, backend):
                assert fake.url.startswith("https://")
                outcome = await backend.deliver(self.change())
                assert outcome.kind in (OutcomeKind.UNREACHABLE, OutcomeKind.FAILED), outcome
                assert outcome.misconfigured, f"an untrusted certificate is ours to fix: {outcome}"
                assert fake.arrived == 0, "a request got through an unverified TLS connection"
                self.assert_no_password(outcome.reason, "the outcome reason")
        self.assert_no_password(logs(), "the logs")

    @asyncio_test
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
    "assert_no_task_left",
    "capture_all_logs",
    "outcome_summary",
    "sha256_hex",
    "untrusted_server_context",
]
