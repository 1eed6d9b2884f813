"""``adsync queue …`` against a real queue file: counts, listing without secrets, purges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adsync.plugin import Change
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.daemon import base_config, idle_backend
from adsync.testing.leaks import REGISTRY, find_in_bytes

PASSWORDS = [REGISTRY.password(f"QueueCli-{i}-Pässwörd") for i in range(3)]


async def make_queue(work: Path, backends: list[str]) -> Path:
    path = work / "queue.db"
    queue = await Queue.open(path, FileKeyProvider(work / "master.key"), backends, max_pending=100)
    for i, password in enumerate(PASSWORDS):
        await queue.append_many(
            [
                Change(
                    event_id=os.urandom(16),
                    account=f"user{i}",
                    password=Secret(password),
                    changed_at_ms=int(time.time() * 1000),
                )
            ]
        )
    await queue.close()
    for suffix in ("", "-wal", "-shm"):
        REGISTRY.watch(path.with_name(path.name + suffix))
    return path


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "adsync", "queue", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (result.stdout + result.stderr).encode()
    assert find_in_bytes(output, PASSWORDS, "cli output") == []
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write_config(work: Path, backends: dict[str, Any]) -> Path:
    path = work / "adsync.yaml"
    path.write_text(json.dumps(base_config(work, backends)))
    return path


@pytest.mark.slow
async def test_status_list_and_purge_of_a_removed_backend(tmp_path: Path) -> None:
    await make_queue(tmp_path, ["kept", "removed"])
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/x", "secret": "env:UNUSED"}
    config = write_config(tmp_path, {"kept": hook})

    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["counts"]["kept"]["pending"] == 3
    assert status["counts"]["removed"]["pending"] == 3
    assert status["pending_changes"] == 3

    listing = cli(config, "list").stdout
    assert {f"user{i}" for i in range(3)} <= set(listing.split())
    rows = json.loads(cli(config, "list", "--json", "--backend", "removed").stdout)
    assert len(rows) == 3 and all(r["state"] == "pending" for r in rows)

    refused = cli(config, "purge", "--removed-backend", "kept", "--yes", check=False)
    assert refused.returncode != 0 and "is configured" in refused.stderr

    assert "purged 3 rows" in cli(config, "purge", "--removed-backend", "removed", "--yes").stdout
    status = json.loads(cli(config, "status", "--json").stdout)
    assert "removed" not in status["counts"]
    assert status["counts"]["kept"]["pending"] == 3
    assert status["pending_changes"] == 3  # "kept" still needs the passwords


async def test_purging_the_last_user_of_a_password_erases_it(tmp_path: Path) -> None:
    db = await make_queue(tmp_path, ["gone"])
    config = write_config(tmp_path, {"idle": idle_backend(tmp_path)})
    cli(config, "purge", "--removed-backend", "gone", "--yes")
    status = json.loads(cli(config, "status", "--json").stdout)
    assert status["pending_changes"] == 0
    for suffix in ("", "-wal"):
        f = db.with_name(db.name + suffix)
        if f.exists():
            assert find_in_bytes(f.read_bytes(), PASSWORDS, str(f)) == []


def test_bad_queue_path_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"idle": idle_backend(tmp_path)})
    result = cli(config, "status", check=False)
    assert result.returncode == 1
    assert "no queue database" in result.stderr
    assert "Traceback" not in result.stderr
