"""The delivery gate: skipped, superseded or unreachable before a plugin is ever called."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

from adsync.directory.captures import Captured
from adsync.directory.client import AccountRecord, DirectoryError
from adsync.directory.gate import DeliveryGate
from adsync.directory.metadata import PasswordVersion, VersionKind
from adsync.directory.scope import AccountFacts, group_key
from adsync.plugin import Change, OutcomeKind, ScopeConfig, Secret

HERE = uuid.UUID("4fd5c182-8beb-449a-a737-cb443682feac")
OTHER = uuid.UUID("0b9b6d5e-2f0e-4c55-9d44-3f0d7a1c2e11")


def change(account: str = "alice", event_id: bytes = b"e" * 16) -> Change:
    return Change(event_id, account, Secret("Pw-1-unit-test"), 0)


class FakeDirectory:
    """Answers like DirectoryClient.lookup; ``error``/``delay`` model a directory that is down."""

    def __init__(self, version: int = 3, origin: uuid.UUID = HERE) -> None:
        self.version = version
        self.origin = origin
        self.groups: frozenset[str] = frozenset()
        self.dn = "CN=alice,OU=Sales,DC=adsync,DC=test"
        self.error: str | None = None
        self.delay = 0.0
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    async def lookup(self, account: str, groups: Iterable[str] = ()) -> AccountRecord:
        self.asked.append((account, tuple(groups)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise DirectoryError(self.error)
        version = PasswordVersion(self.version, VersionKind.META, self.origin, 0.0)
        facts = AccountFacts(self.dn, self.groups)
        return AccountRecord(account, facts, version, frozenset(groups), 0.0)

    async def invocation_id(self) -> uuid.UUID | None:
        return HERE


class FakeHistory:
    def __init__(self, captured: Captured) -> None:
        self.value = captured

    async def captured(self, event_id: bytes) -> Captured:
        return self.value


async def test_builtin_and_globs_need_no_directory() -> None:
    gate = DeliveryGate()
    verdict = await gate.admit(ScopeConfig(), change("krbtgt"))
    assert verdict is not None and verdict.kind is OutcomeKind.SKIPPED
    assert verdict.reason == "built-in exclusion krbtgt"
    assert await gate.admit(ScopeConfig(), change("alice")) is None


async def test_builtins_are_skipped_before_the_directory_is_asked() -> None:
    directory = FakeDirectory()
    gate = DeliveryGate(directory, budget=1.0)
    verdict = await gate.admit(ScopeConfig(include_groups=("g",)), change("WS01$"))
    assert verdict is not None and verdict.kind is OutcomeKind.SKIPPED
    assert directory.asked == []


async def test_group_scope_asks_the_rule_groups() -> None:
    directory = FakeDirectory()
    gate = DeliveryGate(directory, budget=1.0)
    scope = ScopeConfig(include_groups=("OIM users",))
    verdict = await gate.admit(scope, change())
    assert verdict is not None and verdict.reason == "not in include_groups"
    assert directory.asked == [("alice", ("OIM users",))]
    directory.groups = frozenset({group_key("OIM users")})
    assert await gate.admit(scope, change()) is None


async def test_directory_errors_and_slowness_are_unreachable_never_a_guess() -> None:
    directory = FakeDirectory()
    gate = DeliveryGate(directory, budget=0.05)
    scope = ScopeConfig(include_groups=("OIM users",))
    directory.error = "cannot connect: ConnectionError (-1)"
    verdict = await gate.admit(scope, change())
    assert verdict is not None and verdict.kind is OutcomeKind.UNREACHABLE
    assert verdict.reason == "directory: cannot connect: ConnectionError (-1)"
    directory.error, directory.delay = None, 1.0
    verdict = await gate.admit(scope, change())
    assert verdict is not None and verdict.kind is OutcomeKind.UNREACHABLE
    assert verdict.reason == "directory: no answer within 0.05s"


async def test_stale_guard() -> None:
    directory = FakeDirectory(version=5, origin=OTHER)
    captured = FakeHistory((4, VersionKind.META))
    gate = DeliveryGate(directory, captured, budget=1.0)
    verdict = await gate.admit(ScopeConfig(), change())
    assert verdict is not None and verdict.kind is OutcomeKind.SUPERSEDED
    assert verdict.reason == "newer password set on another DC (password version 5 > 4)"
    directory.origin = HERE
    verdict = await gate.admit(ScopeConfig(), change())
    assert verdict is not None and verdict.reason.startswith("newer password set on this DC")
    captured.value = (5, VersionKind.META)  # still the newest: sent
    assert await gate.admit(ScopeConfig(), change()) is None
    captured.value = None  # unknown at capture: the guard does not apply
    assert await gate.admit(ScopeConfig(), change()) is None
