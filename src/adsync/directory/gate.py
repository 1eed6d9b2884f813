"""What the dispatcher asks before each delivery attempt: in scope? still the newest password?

Answers None (send it) or an ``Outcome``: ``skipped`` (the rule that matched),
``superseded`` (a newer password replicated in from another DC), or ``unreachable``
(the directory did not answer within ``directory.budget``: retried, never guessed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Protocol

from adsync.directory.captures import Captured
from adsync.directory.client import AccountRecord, DirectoryError
from adsync.directory.metadata import VersionKind
from adsync.directory.scope import account_rule, directory_rule, rule_groups
from adsync.plugin import Change, Outcome, ScopeConfig


class Directory(Protocol):
    """What the gate needs of ``DirectoryClient``."""

    async def lookup(self, account: str, groups: Iterable[str] = ()) -> AccountRecord: ...

    async def invocation_id(self) -> uuid.UUID | None: ...


class CaptureHistory(Protocol):
    async def captured(self, event_id: bytes) -> Captured: ...


class DeliveryGate:
    def __init__(
        self,
        directory: Directory | None = None,
        captures: CaptureHistory | None = None,
        *,
        budget: float = 2.0,
    ) -> None:
        self.directory = directory
        self.captures = captures
        self.budget = budget
        self._own_invocation: uuid.UUID | None = None

    async def admit(self, scope: ScopeConfig, change: Change) -> Outcome | None:
        rule = account_rule(scope, change.account)
        if rule is not None:
            return Outcome.skipped(rule)
        if self.directory is None:
            return None  # config refuses group/OU rules without a directory
        try:
            async with asyncio.timeout(self.budget):
                return await self._directory_checks(scope, change, self.directory)
        except TimeoutError:
            return Outcome.unreachable(f"directory: no answer within {self.budget:g}s")
        except DirectoryError as exc:
            return Outcome.unreachable(f"directory: {exc}")

    async def _directory_checks(
        self, scope: ScopeConfig, change: Change, directory: Directory
    ) -> Outcome | None:
        record = await directory.lookup(change.account, rule_groups(scope))
        if scope.needs_directory:
            rule = directory_rule(scope, record.facts)
            if rule is not None:
                return Outcome.skipped(rule)
        if self.captures is None or record.version is None:
            return None
        captured = await self.captures.captured(change.event_id)
        if captured is None or not record.version.newer_than(*captured):
            return None
        where = "another DC"
        own = await directory.invocation_id()
        if own is not None and record.version.origin_invocation_id == own:
            where = "this DC"
        if record.version.kind is VersionKind.META:
            detail = f"password version {record.version.value} > {captured[0]}"
        else:
            detail = "pwdLastSet changed since the capture"
        return Outcome.superseded(f"newer password set on {where} ({detail})")


__all__ = ["DeliveryGate"]
