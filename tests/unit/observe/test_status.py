"""The status view: /status, /healthz and the lane metrics from the parts' state (no I/O)."""

from __future__ import annotations

from typing import Any

from adsync.config import Config, config_from_data
from adsync.dispatch.lane import LaneState
from adsync.ingest.server import IngestCounters
from adsync.observe.metrics import QueueDepth
from adsync.observe.status import StatusView
from adsync.reload import plan_reload

from .test_metrics import key, scrape


def config(*names: str) -> Config:
    backend = {"type": "webhook", "url": "http://127.0.0.1:1/h", "secret": "env:X"}
    return config_from_data(
        {
            "ingest": {"unix_socket": "/run/x.sock", "tcp": None},
            "queue": {"path": "/var/lib/adsync/q.db"},
            "backends": {n: dict(backend) for n in names},
        }
    )


class Queue:
    def __init__(self, depth: QueueDepth, problem: str | None = None) -> None:
        self._depth = depth
        self.problem = problem

    async def depth(self) -> QueueDepth:
        return self._depth

    async def write_probe(self) -> str | None:
        return self.problem


def view(cfg: Config, lanes: dict[str, LaneState], depth: QueueDepth | None = None) -> StatusView:
    v = StatusView(config=lambda: cfg, lanes=lambda: lanes, ingest=IngestCounters)
    v.watch(Queue(depth or QueueDepth({n: {} for n in cfg.backends}, {}, 0, 0.0)))
    return v


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in status["backends"]}


async def test_a_backend_that_did_not_start_is_shown_unhealthy_and_stopped() -> None:
    v = view(config("hr", "crm"), {"hr": LaneState(True, 2)})
    v.backend_not_started("crm", "SecretRefError: environment variable X is not set")
    rows = by_name(await v.status())
    assert (rows["hr"]["lane"], rows["hr"]["in_flight"], rows["hr"]["last_error"]) == (
        "running",
        2,
        None,
    )
    assert rows["crm"]["lane"] == "start_failed" and rows["crm"]["configured"] is True
    assert rows["crm"]["last_error"]["outcome"] == "start_failed"
    assert rows["crm"]["last_error"]["error"] == "SecretRefError: environment variable X is not set"
    health = await v.health()
    assert not health.ok
    assert health.reasons == (
        "backend crm did not start: SecretRefError: environment variable X is not set",
    )
    assert health.as_json()["lanes"] == {"crm": "stopped", "hr": "running"}
    metrics = scrape(v.metrics)
    assert metrics[key("adsync_lane_running", backend="crm")] == 0
    assert metrics[key("adsync_lane_running", backend="hr")] == 1

    v.forget_start_failure("crm")  # a reload started it, or removed it
    assert "crm" not in v.not_started
    assert by_name(await v.status())["crm"]["last_error"] is None


async def test_rows_of_a_removed_backend_are_shown_without_a_lane() -> None:
    depth = QueueDepth({"hr": {"delivered": 3}, "old": {"pending": 2, "in_flight": 1}}, {}, 3, 0.0)
    v = view(config("hr"), {"hr": LaneState(True, 0)}, depth)
    status = await v.status()
    rows = by_name(status)
    assert rows["old"]["configured"] is False and rows["old"]["lane"] == "none"
    assert rows["old"]["pending"] == 3 and rows["old"]["type"] is None
    assert status["queue"]["pending_deliveries"] == 3
    assert (await v.health()).ok


async def test_last_error_follows_recorded_outcomes_and_queue_problem_shows_in_health() -> None:
    v = view(config("hr"), {"hr": LaneState(True, 0)})
    v.on_record("hr", "delivered", "delivered", 0.2, "")
    assert by_name(await v.status())["hr"]["last_error"] is None
    v.on_record("hr", "rejected", "pending", None, "too weak")
    err = by_name(await v.status())["hr"]["last_error"]
    assert (err["outcome"], err["error"], err["next_state"]) == ("rejected", "too weak", "pending")
    assert scrape(v.metrics)[key("adsync_deliveries_total", backend="hr", outcome="rejected")] == 1

    broken = StatusView(config=lambda: config("hr"), lanes=dict, ingest=lambda: None)
    assert (await broken.health()).reasons[0] == "queue not writable: the queue is not open"
    broken.watch(Queue(QueueDepth(), problem="disk full"))
    assert "queue not writable: disk full" in (await broken.health()).reasons
    broken.stopping = True
    assert (await broken.health()).reasons[0] == "the daemon is stopping"


async def test_reloads_are_recorded() -> None:
    old, new = config("hr"), config("hr", "crm")
    v = view(new, {})
    v.reload_refused("backends.hr.concurrency: must be at least 1")
    v.reload_applied(plan_reload(old, new), {})
    status = await v.status()
    assert status["reloads"] == 2
    assert status["last_reload"]["ok"] is True and status["last_reload"]["added"] == ["crm"]
    got = scrape(v.metrics)
    assert got[key("adsync_config_reloads_total", outcome="refused")] == 1
    assert got[key("adsync_config_reloads_total", outcome="applied")] == 1
