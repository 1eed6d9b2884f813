"""Metrics instruments, the live collector, depth cache and health evaluation (no I/O)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from adsync.ingest.server import IngestCounters
from adsync.observe.health import WriteProbe, evaluate
from adsync.observe.metrics import ALLOWED_LABELS, DepthCache, Metrics, QueueDepth


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_change_acks_are_counted_by_transport_and_outcome() -> None:
    m = Metrics()
    for ack in ("stored", "stored", "duplicate", "busy", "refused"):
        m.on_change("unix", ack)
    m.on_change("weird", "stored")
    got = scrape(m)
    assert got[key("adsync_changes_received_total", transport="unix")] == 5
    assert got[key("adsync_changes_acked_total", transport="unix", outcome="stored")] == 2
    assert got[key("adsync_changes_acked_total", transport="unix", outcome="duplicate")] == 1
    assert got[key("adsync_changes_busy_total", transport="unix")] == 1
    assert got[key("adsync_changes_refused_total", transport="unix")] == 1
    assert got[key("adsync_changes_received_total", transport="other")] == 1


def test_deliveries_and_latency() -> None:
    m = Metrics()
    m.on_delivery("hr", "delivered", 0.3)
    m.on_delivery("hr", "delivered", 7.0)
    m.on_delivery("hr", "rejected", None)
    got = scrape(m)
    assert got[key("adsync_deliveries_total", backend="hr", outcome="delivered")] == 2
    assert got[key("adsync_deliveries_total", backend="hr", outcome="rejected")] == 1
    assert got[key("adsync_delivery_latency_seconds_count", backend="hr")] == 2
    assert got[key("adsync_delivery_latency_seconds_bucket", backend="hr", le="0.5")] == 1
    assert got[key("adsync_delivery_latency_seconds_bucket", backend="hr", le="10.0")] == 2


def test_live_collector_reads_depth_ingest_and_lanes_at_scrape_time() -> None:
    depth = QueueDepth(
        counts={"hr": {"pending": 3, "delivered": 5}, "crm": {}},
        oldest_created_at={"hr": 100.0},
        changes_holding_password=3,
        taken_at=160.0,
    )
    counters = IngestCounters(connections_open=2, auth_failures=4)
    m = Metrics(depth=lambda: depth, ingest=lambda: counters, lanes=lambda: {"hr": (True, 1)})
    got = scrape(m)
    assert got[key("adsync_queue_deliveries", backend="hr", state="pending")] == 3
    assert got[key("adsync_queue_deliveries", backend="hr", state="failed")] == 0
    assert got[key("adsync_queue_deliveries", backend="crm", state="pending")] == 0
    assert got[key("adsync_queue_oldest_pending_age_seconds", backend="hr")] == 60.0
    assert got[key("adsync_queue_oldest_pending_age_seconds", backend="crm")] == 0.0
    assert got[key("adsync_queue_changes_holding_password")] == 3
    assert got[key("adsync_ingest_connections")] == 2
    assert got[key("adsync_ingest_auth_failures_total")] == 4
    assert got[key("adsync_lane_running", backend="hr")] == 1
    assert got[key("adsync_lane_in_flight", backend="hr")] == 1
    counters.auth_failures = 5  # read again at the next scrape, not copied
    assert scrape(m)[key("adsync_ingest_auth_failures_total")] == 5


def test_every_label_is_from_the_closed_set() -> None:
    m = Metrics(
        depth=lambda: QueueDepth({"hr": {"pending": 1}}, {}, 1, 0.0),
        ingest=IngestCounters,
        lanes=lambda: {"hr": (True, 0)},
    )
    m.on_change("tcp", "stored")
    m.on_check("accept")
    m.on_delivery("hr", "delivered", 1.0)
    m.on_reload(False)
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            assert set(s.labels) - {"le"} <= ALLOWED_LABELS, s.name


def test_two_daemons_have_separate_registries() -> None:
    a, b = Metrics(), Metrics()
    a.on_check("reject")
    assert key("adsync_checks_total", verdict="reject") not in scrape(b)


def test_queue_depth_unfinished_and_age() -> None:
    d = QueueDepth({"a": {"pending": 2, "in_flight": 1, "failed": 9}}, {"a": 10.0}, 0, 4.0)
    assert d.unfinished == 3
    assert d.oldest_age("a") == 0.0  # clock behind the row: never negative
    assert d.oldest_age("b") is None


def test_depth_cache_expires_on_its_clock() -> None:
    now = [0.0]
    cache = DepthCache(max_age=1.0, now=lambda: now[0])
    assert not cache.fresh()
    cache.put(QueueDepth())
    assert cache.fresh()
    now[0] = 1.0
    assert not cache.fresh()
    assert cache.get() == QueueDepth()


def test_health_evaluation() -> None:
    ok = evaluate(queue_problem=None, lanes={"a": True}, stopping=False)
    assert ok.ok and ok.as_json() == {"status": "ok", "reasons": [], "lanes": {"a": "running"}}
    bad = evaluate(queue_problem="read-only", lanes={"b": False, "a": True}, stopping=True)
    assert not bad.ok
    assert bad.reasons == (
        "the daemon is stopping",
        "queue not writable: read-only",
        "lane b is not running",
    )
    down = evaluate(
        queue_problem=None,
        lanes={"a": True, "b": False},
        stopping=False,
        not_started={"b": "SecretRefError: environment variable X is not set"},
    )
    assert down.reasons == (
        "backend b did not start: SecretRefError: environment variable X is not set",
    )


async def test_write_probe_runs_at_most_once_per_interval() -> None:
    now = [0.0]
    calls: list[float] = []
    answers = iter([None, "disk full"])

    async def probe() -> str | None:
        calls.append(now[0])
        return next(answers)

    wp = WriteProbe(probe, min_interval=1.0, now=lambda: now[0])
    assert await wp.check() is None
    now[0] = 0.5
    assert await wp.check() is None  # shared result
    now[0] = 1.5
    assert await wp.check() == "disk full"
    assert calls == [0.0, 1.5]
