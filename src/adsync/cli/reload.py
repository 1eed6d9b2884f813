"""``adsync reload``: check the config file, then SIGHUP the daemon that uses its queue.

The daemon is found by the pid file beside its queue (``<queue>.pid``); the pid
is trusted only while the queue's lock file is held, so a stale pid file never
sends a signal to an unrelated process. When the daemon has a status endpoint,
the command waits for the reload's result and exits 1 if it was refused.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from adsync.cli.common import config_option, load_or_exit, plural


def _daemon_pid(queue_path: Path) -> int:
    from adsync.reload import pid_file_for

    pid_file = pid_file_for(queue_path)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        raise click.ClickException(
            f"no daemon found: {pid_file} is missing or unreadable (is adsync running?)"
        ) from None
    if not _lock_held(queue_path):
        raise click.ClickException(
            f"no daemon holds the queue {queue_path}; {pid_file} is stale (pid {pid})"
        )
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise click.ClickException(f"the daemon pid {pid} from {pid_file} is not running") from None
    return pid


def _lock_held(queue_path: Path) -> bool:
    """True when some process holds the daemon's exclusive lock on ``<queue>.lock``."""
    if sys.platform == "win32":  # pragma: no cover - the service is reloaded by the SCM
        return True
    import fcntl

    try:
        fh = open(str(queue_path) + ".lock", "rb")
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()  # closing drops the shared lock if we got it
    return False


@click.command()
@config_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="How long to wait for the daemon's answer.",
)
def reload(config_path: Path, timeout: float) -> None:
    """Re-read the config in the running daemon (SIGHUP), without dropping anything.

    The file is validated first; an invalid file is reported here and the daemon
    is not signalled. Backends, precheck, logging and dispatch settings change
    live; ingest, queue, keys and metrics settings wait for a restart.
    """
    from adsync.cli.status import fetch_status

    config = load_or_exit(config_path)
    pid = _daemon_pid(Path(config.queue.path))
    before = fetch_status(config) if config.metrics.listen is not None else None
    os.kill(pid, signal.SIGHUP)
    if before is None:
        click.echo(f"sent SIGHUP to adsync (pid {pid}); its log tells the result")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = fetch_status(config)
        if now.get("reloads", 0) > before.get("reloads", 0):
            last = now.get("last_reload") or {}
            if not last.get("ok"):
                click.echo(f"reload refused; the daemon keeps its config:\n{last.get('error')}")
                raise SystemExit(1)
            click.echo(_summary(pid, last))
            return
    click.echo(f"sent SIGHUP to pid {pid}, but no reload result within {timeout:g}s")
    raise SystemExit(1)


def _summary(pid: int, last: dict[str, object]) -> str:
    parts = [f"reloaded (pid {pid})"]
    for key in ("added", "removed", "changed"):
        names = last.get(key)
        if isinstance(names, list) and names:
            parts.append(f"{key}: {', '.join(map(str, names))}")
    lines = ["; ".join(parts)]
    kept = last.get("kept_pending_of_removed")
    if isinstance(kept, dict) and kept:
        for name, n in kept.items():
            kept_n = plural(int(n), "pending delivery", "pending deliveries")
            lines.append(f"kept {kept_n} of removed backend {name} (queue purge)")
    restart = last.get("restart_needed")
    if isinstance(restart, list) and restart:
        lines.append("waiting for a restart: " + ", ".join(map(str, restart)))
    return "\n".join(lines)
