"""Defence in depth at the daemon's door: a CHANGE for an account whose secret is not a
user password (``adsync.accounts``: krbtgt, krbtgt_*, *$) is refused (ACK 1) and never
queued, whatever source sent it; a CHECK for one is accepted without asking a backend
(its secret is a key, not a password a policy should judge).

It wraps the daemon's ``IngestHandler``, so the daemon's own code stays as it is. Each
excluded account is logged once (its name: built-in exclusions are never people), and
counted in the ``adsync_changes_excluded`` metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from adsync.accounts import exclusion
from adsync.ingest.handler import Ack, AckStatus, IngestHandler, Peer
from adsync.plugin import Candidate, Change, CheckResult

log = structlog.get_logger("adsync.ingest")

REFUSED = Ack(AckStatus.REFUSED, "account excluded: its secret is not a user password")
ACCEPTED_REASON = "account excluded: its secret is not a user password"
LOGGED_ACCOUNTS_MAX = 4096


class ExcludingHandler:
    """An ``IngestHandler`` that keeps excluded accounts away from ``inner``."""

    def __init__(self, inner: IngestHandler, on_excluded: Callable[[str, int], None]) -> None:
        self.inner = inner
        self._on_excluded = on_excluded
        self._logged: set[str] = set()

    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> list[Ack]:
        kinds = [exclusion(c.account) for c in changes]
        if not any(kinds):
            return list(await self.inner.store_changes(changes, peer))
        kept = [c for c, kind in zip(changes, kinds, strict=True) if kind is None]
        stored = iter(await self.inner.store_changes(kept, peer) if kept else ())
        acks = [next(stored) if kind is None else REFUSED for kind in kinds]
        for change, kind in zip(changes, kinds, strict=True):
            if kind is not None:
                self._log_once(change.account, kind.value, peer)
        self._on_excluded(peer.transport, len(changes) - len(kept))
        return acks

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        if exclusion(candidate.account) is not None:
            return CheckResult.accept(ACCEPTED_REASON)
        return await self.inner.check(candidate, peer)

    def _log_once(self, account: str, kind: str, peer: Peer) -> None:
        key = account.casefold()
        if key in self._logged or len(self._logged) >= LOGGED_ACCOUNTS_MAX:
            return
        self._logged.add(key)
        log.warning(
            "ingest_change_excluded",
            account=account,
            kind=kind,
            transport=peer.transport,
            peer=peer.description,
        )
