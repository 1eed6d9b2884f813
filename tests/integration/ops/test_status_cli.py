"""`adsync status` and `adsync queue drain --wait` against the real daemon."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

from .conftest import off_loop, webhook

pytestmark = pytest.mark.slow


def send(daemon: Any, n: int) -> list[int]:
    acks = []
    with IngestClient.unix(daemon.unix_socket) as client:
        for _ in range(n):
            password = f"Cli-{os.urandom(8).hex()}"
            REGISTRY.password(password)
            ack = client.change(
                account=f"c{os.urandom(4).hex()}",
                password=Secret(password),
                changed_at_ms=1_700_000_000_000,
                event_id=os.urandom(16),
            )
            acks.append(int(ack.status))
    return acks


def status_at_80_columns(daemon: Any) -> subprocess.CompletedProcess[str]:
    """`adsync status` through a pipe, as in `adsync status | mail` on an 80-column setup."""
    return subprocess.run(
        [sys.executable, "-m", "adsync", "status", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )


async def test_status_table_json_and_drain_wait(targets: Any, make_daemon: Any) -> None:
    hr, crm = await targets(), await targets()
    crm.respond(503)  # one backend down: its backlog waits
    daemon = make_daemon({"hr": webhook(hr.url), "crm": webhook(crm.url)})
    await off_loop(daemon.start)
    assert await off_loop(send, daemon, 20) == [0] * 20
    await off_loop(daemon.wait_for, lambda s: len(hr.deliveries) == 20)

    table = await off_loop(status_at_80_columns, daemon)
    assert table.returncode == 0, table.stderr
    out = table.stdout.splitlines()
    assert [line for line in out if len(line) > 80] == []
    assert not any("\x1b" in line or "│" in line for line in out)  # a pipe: no colour, no box
    header = next(i for i, line in enumerate(out) if line.startswith("BACKEND"))
    table_rows = out[header + 1 : out.index("", header)]
    rows = {line.split()[0]: line.split() for line in table_rows}
    assert rows["hr"][2] == "running" and rows["crm"][2] == "running"
    assert rows["hr"][4] == "0" and rows["crm"][4] == "20"  # pending column
    crm_error = next(line for line in out if line.startswith("crm last error"))
    assert "unreachable: HTTP 503" in crm_error
    as_json = await off_loop(daemon.cli, "status", "--json")
    data = json.loads(as_json.stdout)
    rows = {b["name"]: b for b in data["backends"]}
    assert rows["hr"]["counts"]["delivered"] == 20 and rows["hr"]["pending"] == 0
    assert rows["crm"]["pending"] == 20
    assert rows["crm"]["last_error"]["outcome"] == "unreachable"

    # without --wait: how many are pending, exit 1 while some are
    now = await off_loop(daemon.cli, "queue", "drain")
    assert (now.returncode, now.stdout.strip()) == (1, "20 deliveries pending")
    # --timeout while crm stays down
    timed_out = await off_loop(daemon.cli, "queue", "drain", "--wait", "--timeout", "1")
    assert timed_out.returncode == 1
    assert "20 deliveries still pending" in timed_out.stdout

    drain = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adsync",
            "queue",
            "drain",
            "--wait",
            "--timeout",
            "60",
            "--config",
            str(daemon.config_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.sleep(1.0)
        assert drain.poll() is None  # still waiting: crm is down
        crm.clear_responses()  # crm comes back
        out, err = await off_loop(drain.communicate, None, 60)
    finally:
        if drain.poll() is None:
            drain.kill()
    assert drain.returncode == 0, out + err
    assert "drained: 20 deliveries" in out
    assert len(crm.deliveries) == 20


async def test_status_without_a_daemon_exits_3(make_daemon: Any) -> None:
    daemon = make_daemon({"hr": webhook("http://127.0.0.1:9/hook")})  # never started
    result = await off_loop(daemon.cli, "status")
    assert result.returncode == 3
    assert "no daemon answers at http://127.0.0.1:" in result.stderr
    reload = await off_loop(daemon.cli, "reload")
    assert reload.returncode == 1
    assert "no daemon found" in reload.stderr
