"""Order survives the spool (issue 10, item 5): the target ends with the newest password.

adsyncflt.dll under wine, the real daemon (`adsync run`, TCP + PSK), the webhook target.
Changes 1..k of one account go to the spool while nothing listens; the PSK is then
replaced, so the restarted DLL sets that spool aside (it no longer opens) and change k+1
goes straight to the daemon and is delivered. The operator replays the set-aside spool
(`adsync filter spool replay` with the old key): 1..k reach the daemon last, after k+1
was delivered. They must end `superseded`, never sent: the daemon orders by the source's
changed_at and sequence (spooled with each change), not by arrival. Compared as digests.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from lsa_wine import Harness, free_port, read_spool, sha, wait_until, winpath, write_changes

from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

SECRET_ENV = "ADSYNC_ORDER_WEBHOOK_SECRET"
K = 5


def states(db: Path) -> list[tuple[str, int, int]]:
    """Each delivery's state, source time and sequence, in arrival order (clear columns)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [
            (str(s), int(at), int(seq))
            for s, at, seq in conn.execute(
                "SELECT d.state, c.changed_at_ms, c.sequence FROM deliveries d"
                " JOIN changes c ON c.id = d.change_id ORDER BY c.id"
            )
        ]


async def run_harness(setup, tmp_path: Path, name: str, rows, kill_when) -> None:  # type: ignore[no-untyped-def]
    h = Harness(setup.wine, tmp_path, name=name)
    changes = winpath(write_changes(tmp_path / f"{name}.txt", rows))
    await h.start("init", "notify", changes, "wait", winpath(h.stop_file), "120")
    assert await wait_until(kill_when, 60), setup.log_text()[-3000:]
    h.kill()
    await h.wait()


async def test_spooled_older_changes_replayed_after_a_newer_one_never_reach_the_target(
    filter_setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [(4100, "alice", REGISTRY.password(f"Older-Spooled-Pw-{i}-€")) for i in range(K)]
    newest = (4100, "alice", REGISTRY.password("Newest-Straight-Pw-€"))
    port = free_port()
    filter_setup.configure(port)

    # 1..k: nobody listens, so the worker spools them (the overload / daemon-down path).
    await run_harness(
        filter_setup,
        tmp_path,
        "spooling",
        old,
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == K,
    )
    old_key = tmp_path / "old.key"
    old_key.write_bytes(filter_setup.psk)
    old_key.chmod(0o600)
    filter_setup.key_file.write_bytes(bytes(range(32)))  # the PSK is replaced

    monkeypatch.setenv(SECRET_ENV, "order-webhook-key")
    async with WebhookTarget("order-webhook-key") as target:
        work = tmp_path / "daemon"
        work.mkdir()
        backend = {
            "type": "webhook",
            "url": target.url,
            "secret": f"env:{SECRET_ENV}",
            "timeout": "5s",
            "retry": {"backoff": {"initial": "100ms", "max": "500ms", "factor": 2, "jitter": 0.1}},
        }
        ingest = {"unix_socket": None, "tcp": f"127.0.0.1:{port}"}
        ingest["psk_file"] = str(filter_setup.key_file)
        daemon = DaemonProcess(work, base_config(work, {"hook": backend}, ingest=ingest))
        daemon.start()
        try:
            # k+1: the restarted DLL sets the old spool aside and sends this one straight.
            await run_harness(
                filter_setup,
                tmp_path,
                "straight",
                [newest],
                lambda: len(target.deliveries) >= 1,
            )
            [aside] = list(filter_setup.spool_dir.glob("adsyncflt.spool.bad-*"))
            # 1..k arrive now, after k+1 was delivered.
            cli = [sys.executable, "-m", "adsync", "filter", "spool", "replay", str(aside)]
            cli += ["--key-file", str(old_key), "--config", str(daemon.config_path)]
            done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert f"stored {K}, refused 0, busy 0" in done.stdout
            db = work / "queue.db"
            settled = await wait_until(
                lambda: all(s not in ("pending", "in_flight") for s, _, _ in states(db)), 30
            )
            assert settled, daemon.log_tail(30)
            final = states(db)
        finally:
            daemon.stop(timeout=30)

    # Arrival order: the newest first, then the k older ones, each ended superseded.
    assert [s for s, _, _ in final] == ["delivered"] + ["superseded"] * K
    newest_order = final[0][1:]
    assert all((at, seq) < newest_order for _, at, seq in final[1:])  # older at the source
    # The sequences are the DLL's, monotonic across its restart: the new process numbers above.
    assert [seq for _, _, seq in final[1:]] == sorted(seq for _, _, seq in final[1:])
    assert target.invalid == []
    assert [d.password_sha256 for d in target.deliveries] == [sha(newest[2])]
    for _, _, p in [*old, newest]:
        assert p not in done.stdout + done.stderr
