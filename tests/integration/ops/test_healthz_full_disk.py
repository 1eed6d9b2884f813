"""/healthz on a full disk: 503 while appends are refused for lack of space, 200 after.

The queue lives on a small tmpfs mounted in a private mount namespace that only the
daemon sees (``unshare --mount``: the mount goes when the daemon does); the test
reaches it through ``/proc/<pid>/root``. A filler file takes the last free page.
Then the daemon really cannot append (ACK 2, "queue storage is full"), while
rewriting one existing row still commits in the slack the refused append left at the
WAL's end: that is what the old probe did, and why it said ok.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.daemon import base_config
from adsync.testing.leaks import REGISTRY

from .conftest import OpsDaemon, free_port, off_loop, pending_total, webhook
from .test_healthz import wait_health

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="mounting a tmpfs needs root and unshare(1)",
)

TMPFS_SIZE = "8m"


class TmpfsDaemon(OpsDaemon):
    """The daemon in its own mount namespace, with ``mount`` a fresh tmpfs there."""

    mount: Path

    def command(self) -> list[str]:
        script = f'mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 tmpfs "$0" && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                str(self.mount), *super().command()]  # fmt: skip

    def on_tmpfs(self, name: str) -> Path:
        """A file on the daemon's tmpfs, as this process can reach it."""
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root") / self.mount.relative_to("/") / name


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; returns the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            while True:
                try:
                    written += os.write(fd, bytes(size))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return written


def send(daemon: OpsDaemon, account: str) -> tuple[int, str]:
    password = "Full-Disk-" + os.urandom(6).hex()
    REGISTRY.password(password)
    with IngestClient.unix(daemon.unix_socket) as client:
        ack = client.change(
            account=account,
            password=Secret(password),
            changed_at_ms=1_700_000_000_000,
            event_id=os.urandom(16),
        )
        return int(ack.status), ack.reason


async def test_healthz_503_while_the_disk_is_full_then_200(
    tmp_path: Path, secret_env: str, targets: Any
) -> None:
    target = await targets()
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    config = base_config(
        tmp_path,
        {"hr": webhook(target.url)},
        queue={"path": str(mount / "queue.db")},
        metrics={"listen": f"127.0.0.1:{free_port()}"},
        logging={"level": "info", "format": "json"},
    )
    daemon = TmpfsDaemon(tmp_path, config)
    daemon.mount = mount
    try:
        await off_loop(daemon.start)
        assert (await off_loop(wait_health, daemon, 200))["reasons"] == []
        for i in range(3):
            assert await off_loop(send, daemon, f"before-{i}") == (0, "")
        await off_loop(daemon.wait_for, lambda s: pending_total(s) == 0)

        filler = daemon.on_tmpfs("filler")
        assert await off_loop(fill, filler) > 0
        refused: list[str] = []
        stored = []
        for i in range(200):  # the WAL may still have room for a few appends
            status, reason = await off_loop(send, daemon, f"during-{i}")
            if status == 2:
                refused.append(reason)
                break
            stored.append(f"during-{i}")
        assert refused == ["queue storage is full"]

        bad = await off_loop(wait_health, daemon, 503)
        assert bad["status"] == "unhealthy"
        assert len(bad["reasons"]) == 1, bad
        # the probe itself finds no room (not only the memory of the refused append)
        assert bad["reasons"] == [
            "queue not writable: queue storage is full: a 32 KiB write did not commit"
        ]
        assert await off_loop(send, daemon, "still-full") == (2, "queue storage is full")
        assert (await off_loop(wait_health, daemon, 503))["reasons"] == bad["reasons"]

        filler.unlink()
        again = await off_loop(wait_health, daemon, 200, 30.0)
        assert again["reasons"] == []
        assert await off_loop(send, daemon, "after") == (0, "")
        await off_loop(daemon.wait_for, lambda s: pending_total(s) == 0)
        delivered = sorted(d.account for d in target.deliveries)
        assert delivered == sorted(["before-0", "before-1", "before-2", *stored, "after"])
        assert daemon.stop(timeout=30) == 0
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)
