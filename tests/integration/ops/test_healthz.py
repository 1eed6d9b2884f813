"""/healthz follows the queue's writability, tested with an immutable file (chattr +i).

We run as root, and root ignores file modes, so ``chmod a-w`` proves nothing. The
immutable attribute (ext4, xfs, btrfs…) refuses writes to everyone, root included,
and also through descriptors opened before it was set: the daemon's own SQLite
connection then fails to write, exactly as on a read-only disk.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

from .conftest import off_loop, pending_total, webhook


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


def wait_health(daemon: Any, code: int, timeout: float = 15.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    last: tuple[int, bytes] = (0, b"")
    while time.monotonic() < deadline:
        last = daemon.get("/healthz")
        if last[0] == code:
            data: dict[str, Any] = json.loads(last[1])
            return data
        time.sleep(0.2)
    raise AssertionError(f"/healthz did not answer {code}; last: {last!r}")


@pytest.mark.slow
async def test_healthz_503_while_queue_file_is_immutable_then_200(
    targets: Any, make_daemon: Any
) -> None:
    target = await targets()
    daemon = make_daemon({"hr": webhook(target.url)})
    await off_loop(daemon.start)
    ok = await off_loop(wait_health, daemon, 200)
    assert ok == {"status": "ok", "reasons": [], "lanes": {"hr": "running"}}

    db = Path(daemon.config["queue"]["path"])
    files = [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]
    chattr("+i", *files)
    try:
        bad = await off_loop(wait_health, daemon, 503)
    finally:
        chattr("-i", *files)
    assert bad["status"] == "unhealthy"
    assert len(bad["reasons"]) == 1 and bad["reasons"][0].startswith("queue not writable: ")
    assert "Operation not permitted" in bad["reasons"][0]

    again = await off_loop(wait_health, daemon, 200)
    assert again["reasons"] == []

    def send() -> int:
        password = "Recovered-" + os.urandom(6).hex()
        REGISTRY.password(password)
        with IngestClient.unix(daemon.unix_socket) as client:
            ack = client.change(
                account="after-recovery",
                password=Secret(password),
                changed_at_ms=1_700_000_000_000,
                event_id=os.urandom(16),
            )
            return int(ack.status)

    assert await off_loop(send) == 0  # the queue writes again after the outage
    await off_loop(daemon.wait_for, lambda s: pending_total(s) == 0)
    assert [d.account for d in target.deliveries] == ["after-recovery"]
