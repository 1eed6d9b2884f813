"""What the daemon does with what a source sends: CHANGE → the queue, CHECK → the precheck.

``Intake`` is the daemon's ``IngestHandler``. It reads the running config and
backends at each request: a reload swaps both between two requests, never during one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from adsync.config import Config
from adsync.ingest.handler import Ack, AckStatus, Peer
from adsync.observe.status import StatusView
from adsync.plugin import Backend, Candidate, Change, CheckResult
from adsync.precheck import precheck
from adsync.queue.store import AppendStatus, Queue

log = structlog.get_logger("adsync.daemon")

_STORED = Ack(AckStatus.STORED)
_SHUTTING_DOWN = Ack(AckStatus.BUSY, "daemon is shutting down")


class Running(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def backends(self) -> Mapping[str, Backend[Any]]: ...  # the started ones


class CaptureHook(Protocol):
    def expect(self, changes: Sequence[Change]) -> None: ...

    def on_stored(self, changes: Sequence[Change], stored: Sequence[bool]) -> None: ...


class Intake:
    def __init__(self, running: Running, view: StatusView) -> None:
        self._running = running
        self._view = view
        self._metrics = view.metrics
        self._queue: Queue | None = None
        self.captures: CaptureHook | None = None  # the capture history (adsync.directory)

    def open(self, queue: Queue) -> None:
        """CHANGEs are stored in ``queue`` from now on."""
        self._queue = queue

    def close(self) -> None:
        """CHANGEs get ACK busy from now on (the source sends them again later)."""
        self._queue = None

    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> list[Ack]:
        if self._queue is None:
            self._metrics.on_change(peer.transport, "busy", len(changes))
            return [_SHUTTING_DOWN] * len(changes)
        if self.captures is not None:
            self.captures.expect(changes)
        results = await self._queue.append_many(changes)
        if self.captures is not None:
            self.captures.on_stored(changes, [r.status is AppendStatus.STORED for r in results])
        for status, count in Counter(r.status for r in results).items():
            self._metrics.on_change(peer.transport, status.value, count)
        return [
            _STORED if r.status is not AppendStatus.BUSY else Ack(AckStatus.BUSY, r.reason)
            for r in results
        ]

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        # One read of each: a reload swaps config and backends together, between awaits.
        pre, backends = self._running.config.precheck, self._running.backends
        down = self._view.not_started
        asked = [backends[n] for n in pre.backends if n in backends and backends[n].offers_check]
        result = await precheck(
            candidate,
            asked,
            within=pre.timeout,
            on_undecided=pre.on_undecided,
            unanswered=[n for n in pre.backends if n in down],  # did not start: no answer
        )
        verdict = result.verdict.name.lower()
        self._metrics.on_check(verdict)
        log.info("check", verdict=verdict, peer=peer.description)
        return result


__all__ = ["Intake", "Running"]
