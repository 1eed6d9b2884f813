"""A backend whose plugin cannot start: the daemon and the other backends keep running.

Its changes are queued and wait; status and /healthz say why; once the cause is
fixed, ``adsync reload`` starts it and the waiting changes are delivered.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

from .conftest import SECRET, off_loop, webhook

pytestmark = pytest.mark.slow


def send(socket: Any, n: int) -> list[int]:
    acks = []
    with IngestClient.unix(socket) as client:
        for i in range(n):
            password = REGISTRY.password(f"Start-{os.urandom(8).hex()}")
            ack = client.change(
                account=f"starter{i}",
                password=Secret(password),
                changed_at_ms=1_700_000_000_000 + i,
                event_id=os.urandom(16),
            )
            acks.append(int(ack.status))
    return acks


async def test_a_backend_that_cannot_start_waits_for_a_reload_and_the_others_run(
    targets: Any, make_daemon: Any, tmp_path: Any
) -> None:
    good, late = await targets(), await targets()
    secret_file = tmp_path / "late.secret"  # missing at start: the plugin cannot read it
    daemon = make_daemon({"good": webhook(good.url), "late": webhook(late.url)})
    daemon.config["backends"]["late"]["secret"] = f"file:{secret_file}"
    daemon.rewrite(daemon.config)
    await off_loop(daemon.start)

    assert await off_loop(send, daemon.unix_socket, 3) == [0, 0, 0]  # still stored and ACKed
    await off_loop(daemon.wait_for, lambda s: len(good.deliveries) == 3)
    status = await off_loop(daemon.status)
    rows = {b["name"]: b for b in status["backends"]}
    assert rows["good"]["lane"] == "running"
    assert rows["late"]["lane"] == "start_failed"
    assert rows["late"]["counts"] == {"pending": 3}  # queued for it, waiting
    error = rows["late"]["last_error"]
    assert error["outcome"] == "start_failed"
    assert error["error"].startswith("SecretRefError: cannot read secret file")
    assert str(secret_file) in error["error"]
    code, body = await off_loop(daemon.get, "/healthz")
    health = json.loads(body)
    assert code == 503
    assert health["lanes"] == {"good": "running", "late": "stopped"}
    assert health["reasons"] == [f"backend late did not start: {error['error']}"]
    failed = [e for e in daemon.log_events() if e.get("event") == "backend_start_failed"]
    assert len(failed) == 1 and failed[0]["backend"] == "late"
    shown = await off_loop(daemon.cli, "status")
    assert shown.returncode == 0 and "did not start" in shown.stdout
    assert "then `adsync reload`" in shown.stdout

    secret_file.write_text(SECRET + "\n")
    result = await off_loop(daemon.cli, "reload")  # the same file: the failed one is retried
    assert result.returncode == 0, result.stdout + result.stderr
    await off_loop(daemon.wait_for, lambda s: len(late.deliveries) == 3)
    status = await off_loop(daemon.status)
    rows = {b["name"]: b for b in status["backends"]}
    assert rows["late"]["lane"] == "running" and rows["late"]["last_error"] is None
    assert status["last_reload"]["changed"] == ["late"]
    assert {d.event_id for d in late.deliveries} == {d.event_id for d in good.deliveries}
    code, _ = await off_loop(daemon.get, "/healthz")
    assert code == 200
