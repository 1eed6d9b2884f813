"""What the dispatcher asks before each delivery attempt: in scope? still the newest password?

Answers None (send it) or an ``Outcome``: ``skipped`` (the rule that matched),
``superseded`` (a newer password replicated in from another DC), or ``unreachable``
(the directory did not answer within ``directory.budget``: retried, never guessed).
"""

from __future__ import annotations

import asyncio
import uuid

from adsync.directory.captures import CaptureBook
from adsync.directory.client import DirectoryClient, DirectoryError
from adsync.directory.scope import account_rule, directory_rule, rule_groups
from adsync.plugin import Change, Outcome, ScopeConfig


class DeliveryGate:
    def __init__(
        self,
        directory: DirectoryClient | None = None,
        captures: CaptureBook | None = None,
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
        self, scope: ScopeConfig, change: Change, directory: DirectoryClient
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
        return Outcome.superseded(
            f"newer password set on {where} (version {record.version.value} > {captured[0]})"
        )


__all__ = ["DeliveryGate"]
