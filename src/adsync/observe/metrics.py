"""Prometheus metrics of one daemon, in a registry of its own (never the global one).

Labels are chosen from a closed set (backend, outcome, state, verdict, transport):
an account name, a password or a free-text reason can never become a label, so
the exposition cannot leak one. Queue depths are read from the database at
scrape time (one grouped query, cached briefly), never kept as counters that
could drift from the truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adsync.ingest.server import IngestCounters
from adsync.queue.models import DeliveryState, QueueDepth

ALLOWED_LABELS: Final = frozenset({"backend", "outcome", "state", "verdict", "transport"})
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Receipt to delivered: from a LAN target in milliseconds to a backlog after an outage.
LATENCY_BUCKETS: Final = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    6 * 3600.0,
    86400.0,
)


class _LiveCollector(Collector):
    """Gauges and counters read at scrape time from state the daemon already keeps."""

    def __init__(
        self,
        depth: Callable[[], QueueDepth | None],
        ingest: Callable[[], IngestCounters | None],
        lanes: Callable[[], Mapping[str, tuple[bool, int]]],
    ) -> None:
        self._depth = depth
        self._ingest = ingest
        self._lanes = lanes

    def collect(self) -> Iterator[Metric]:
        yield from self._queue_metrics()
        yield from self._ingest_metrics()
        yield from self._lane_metrics()

    def _queue_metrics(self) -> Iterable[Metric]:
        snapshot = self._depth()
        if snapshot is None:
            return
        depth = GaugeMetricFamily(
            "adsync_queue_deliveries",
            "Delivery rows in the queue, by backend and state.",
            labels=["backend", "state"],
        )
        oldest = GaugeMetricFamily(
            "adsync_queue_oldest_pending_age_seconds",
            "Age of the oldest pending or in-flight delivery, by backend (0 when none).",
            labels=["backend"],
        )
        for backend in sorted(snapshot.counts):
            for state in DeliveryState:
                depth.add_metric([backend, state.value], snapshot.counts[backend].get(state, 0))
            oldest.add_metric([backend], snapshot.oldest_age(backend) or 0.0)
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "adsync_queue_changes_holding_password",
            "Changes whose sealed password is still stored (some backend still needs it).",
            value=snapshot.changes_holding_password,
        )

    def _ingest_metrics(self) -> Iterable[Metric]:
        counters = self._ingest()
        if counters is None:
            return
        yield GaugeMetricFamily(
            "adsync_ingest_connections",
            "Source connections open now.",
            value=counters.connections_open,
        )
        for name, value, text in (
            ("connections_accepted", counters.connections_accepted, "Connections accepted."),
            ("auth_failures", counters.auth_failures, "TCP handshakes that failed the PSK proof."),
            ("peers_refused", counters.peers_refused, "Unix peers refused by uid."),
            ("connections_over_limit", counters.connections_over_limit, "Over max_connections."),
            ("frames_refused", counters.frames_refused, "Malformed or misplaced frames refused."),
            ("handler_errors", counters.handler_errors, "Requests the daemon failed to handle."),
            ("unsealed_refused", counters.unsealed_refused, "TCP clients of unsealed v1 refused."),
            ("seal_failures", counters.seal_failures, "Sealed frames that failed their tag."),
        ):
            yield CounterMetricFamily(f"adsync_ingest_{name}", text, value=value)

    def _lane_metrics(self) -> Iterable[Metric]:
        running = GaugeMetricFamily(
            "adsync_lane_running", "1 while the backend's lane runs.", labels=["backend"]
        )
        in_flight = GaugeMetricFamily(
            "adsync_lane_in_flight", "Deliveries running now.", labels=["backend"]
        )
        for backend, (is_running, n) in sorted(self._lanes().items()):
            running.add_metric([backend], 1.0 if is_running else 0.0)
            in_flight.add_metric([backend], n)
        yield running
        yield in_flight


class Metrics:
    """The daemon's instruments. Call the ``on_*`` methods; ``render()`` for a scrape."""

    def __init__(
        self,
        *,
        depth: Callable[[], QueueDepth | None] = lambda: None,
        ingest: Callable[[], IngestCounters | None] = lambda: None,
        lanes: Callable[[], Mapping[str, tuple[bool, int]]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.changes_received = Counter(
            "adsync_changes_received",
            "CHANGE requests handed to the daemon.",
            ["transport"],
            registry=r,
        )
        self.changes_acked = Counter(
            "adsync_changes_acked",
            "CHANGEs answered ACK 0 (stored now, or a duplicate stored before).",
            ["transport", "outcome"],
            registry=r,
        )
        self.changes_refused = Counter(
            "adsync_changes_refused", "CHANGEs answered ACK 1 (refused).", ["transport"], registry=r
        )
        self.changes_busy = Counter(
            "adsync_changes_busy",
            "CHANGEs answered ACK 2 (busy: not stored, the source resends).",
            ["transport"],
            registry=r,
        )
        self.changes_excluded = Counter(
            "adsync_changes_excluded",
            "CHANGEs refused because the account's secret is not a user password"
            " (krbtgt, krbtgt_*, *$); also counted in adsync_changes_refused.",
            ["transport"],
            registry=r,
        )
        self.checks = Counter(
            "adsync_checks", "CHECK requests answered, by verdict.", ["verdict"], registry=r
        )
        self.deliveries = Counter(
            "adsync_deliveries",
            "Delivery attempts finished, by backend and outcome.",
            ["backend", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "adsync_delivery_latency_seconds",
            "From receipt of a change to its delivery to a backend.",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "adsync_config_reloads", "Config reloads, by outcome.", ["outcome"], registry=r
        )
        r.register(_LiveCollector(depth, ingest, lanes))

    def on_change(self, transport: str, ack: str, count: int = 1) -> None:
        """``ack``: stored | duplicate | refused | busy, for ``count`` changes."""
        transport = _transport(transport)
        self.changes_received.labels(transport).inc(count)
        if ack in ("stored", "duplicate"):
            self.changes_acked.labels(transport, ack).inc(count)
        elif ack == "refused":
            self.changes_refused.labels(transport).inc(count)
        else:
            self.changes_busy.labels(transport).inc(count)

    def on_excluded(self, transport: str, count: int = 1) -> None:
        """``count`` CHANGEs refused for an excluded account (see ``adsync.accounts``)."""
        self.on_change(transport, "refused", count)
        self.changes_excluded.labels(_transport(transport)).inc(count)

    def on_check(self, verdict: str) -> None:
        self.checks.labels(verdict).inc()

    def on_delivery(self, backend: str, outcome: str, latency: float | None) -> None:
        self.deliveries.labels(backend, outcome).inc()
        if latency is not None:
            self.latency.labels(backend).observe(max(0.0, latency))

    def on_reload(self, ok: bool) -> None:
        self.reloads.labels("applied" if ok else "refused").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _transport(value: str) -> str:
    return value if value in ("unix", "tcp") else "other"


class DepthCache:
    """Keeps the last queue depth for ``max_age`` seconds so scrapes stay cheap."""

    def __init__(self, max_age: float = 1.0, now: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._now = now
        self._value: QueueDepth | None = None
        self._at = float("-inf")

    def fresh(self) -> bool:
        return self._value is not None and self._now() - self._at < self.max_age

    def put(self, value: QueueDepth) -> None:
        self._value = value
        self._at = self._now()

    def get(self) -> QueueDepth | None:
        return self._value


__all__ = ["ALLOWED_LABELS", "CONTENT_TYPE", "DepthCache", "Metrics", "QueueDepth"]
