"""What the ingest servers hand validated requests to (the daemon implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from adsync.ingest.wire import AckCode
from adsync.plugin import Candidate, Change, CheckResult

AckStatus = AckCode
"""The ACK status a handler answers: the wire's enum itself (STORED, REFUSED, BUSY)."""


@dataclass(frozen=True, slots=True)
class Ack:
    status: AckStatus
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sent a request, for logs and metrics (never frame content)."""

    transport: str  # "unix" | "tcp"
    description: str  # "uid=0 pid=123" or "127.0.0.1:5555"


class IngestHandler(Protocol):
    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> Sequence[Ack]:
        """Store each durably, then return one Ack per change, in order: STORED, or BUSY
        for one that cannot be stored now.

        The server hands over the CHANGEs of one read together, so that one
        append (and one commit) serves them all.
        """
        ...

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        """Answer a policy pre-check within the configured precheck timeout."""
        ...
