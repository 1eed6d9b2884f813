"""Redaction costs nothing per line: counted, not timed.

1,000 deliveries through a real queue and lane, each logging its ``delivery`` line at info
through the redacting formatter. A secret's encoded forms are computed once, when the
secret is first seen, never again per line; and no delivery builds a matcher of its own
(the lane scrubs a target's reason only when there is one).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

import adsync.secret
from adsync.clock import FakeClock
from adsync.observe.logs import configure_logging
from adsync.queue.models import DeliveryState

from .test_dispatcher import Cleanup, FakeBackend, OpenQueue, config, eventually, make_change, start

DELIVERIES = 1000


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    yield stream
    configure_logging("info", "json", io.StringIO())


async def test_matcher_builds_per_thousand_deliveries(
    open_queue: OpenQueue,
    clock: FakeClock,
    cleanup: Cleanup,
    log_stream: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = {"forms": 0, "indexes": 0}
    real_forms, real_init = adsync.secret.encoded_forms, adsync.secret.SecretIndex.__init__

    def counted_forms(value: str) -> set[str]:
        counts["forms"] += 1
        return real_forms(value)

    def counted_init(self: Any) -> None:
        counts["indexes"] += 1
        real_init(self)

    # Bring the live index up to date first: earlier tests may have filled the journal
    # past its limit, and its one rebuild would be counted here.
    with adsync.secret.live_secrets():
        pass
    monkeypatch.setattr(adsync.secret, "encoded_forms", counted_forms)
    monkeypatch.setattr(adsync.secret.SecretIndex, "__init__", counted_init)
    fake = FakeBackend("fake", config(concurrency=8))
    queue, dispatcher = await start(open_queue, clock, cleanup, {"fake": fake})
    changes = [make_change(f"user{i}") for i in range(DELIVERIES)]
    await queue.append_many(changes)
    await eventually(lambda: dispatcher.lanes["fake"].delivered == DELIVERIES, "every delivery")
    lines = log_stream.getvalue().count('"event": "delivery"')
    assert lines == DELIVERIES
    status = await queue.status()
    assert status.counts["fake"][DeliveryState.DELIVERED.value] == DELIVERIES
    assert counts["indexes"] == 0, "no matcher built per delivery"
    # Each password's forms once (opened for its delivery); a build per line would be
    # one per line and secret alive.
    assert counts["forms"] <= DELIVERIES + 10, counts
