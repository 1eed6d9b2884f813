"""What a config reload changes: pure comparison of the running config and the new one.

Live: ``backends`` (added, removed, changed: the lane is restarted with the new
settings), ``precheck``, ``logging``, ``dispatch``, ``samba``. Restart-only:
``ingest`` (sockets, keys of the handshake, limits), ``queue`` (path, bound),
``keys`` and ``metrics`` (the listener): a reload keeps the running values of
those sections and reports which keys wait for a restart. ``adsync.reloader``
applies the plan to the running daemon.

The pid file that ``adsync reload`` signals lives next to the queue database.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from adsync.config import Config

RESTART_ONLY: tuple[str, ...] = ("ingest", "queue", "keys", "metrics")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    config: Config  # what the daemon runs with after the reload
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    restart_needed: tuple[str, ...]  # "ingest.tcp", ...: in the file, not in effect

    @property
    def backends_touched(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def plan_reload(running: Config, new: Config, *, not_started: Collection[str] = ()) -> ReloadPlan:
    """``not_started``: backends whose plugin failed to start; a reload that keeps them
    starts them again (as changed), so fixing a secret file and reloading is enough."""
    restart: list[str] = []
    for section in RESTART_ONLY:
        old_part, new_part = getattr(running, section), getattr(new, section)
        if old_part == new_part:
            continue
        for name in type(old_part).model_fields:
            if getattr(old_part, name) != getattr(new_part, name):
                restart.append(f"{section}.{name}")
    if running.directory != new.directory:  # optional section: compared whole
        restart.append("directory")
    kept = (*RESTART_ONLY, "directory")
    effective = new.model_copy(update={s: getattr(running, s) for s in kept})
    old_names, new_names = set(running.backends), set(new.backends)
    return ReloadPlan(
        config=effective,
        added=tuple(sorted(new_names - old_names)),
        removed=tuple(sorted(old_names - new_names)),
        changed=tuple(
            sorted(
                n
                for n in old_names & new_names
                if running.backends[n] != new.backends[n] or n in not_started
            )
        ),
        restart_needed=tuple(restart),
    )


# --- the pid file ---------------------------------------------------------------------------


def pid_file_for(queue_path: Path) -> Path:
    """``<queue>.pid``, beside the ``<queue>.lock`` the daemon holds."""
    return Path(str(queue_path) + ".pid")


def write_pid_file(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_pid_file(path: Path) -> None:
    """Remove the pid file only if it still names this process."""
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


__all__ = [
    "RESTART_ONLY",
    "ReloadPlan",
    "pid_file_for",
    "plan_reload",
    "remove_pid_file",
    "write_pid_file",
]
