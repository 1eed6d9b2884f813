"""The check hook's back-off after a timed-out daemon: one deadline per window, not per change.

A hung daemon (stopped, deadlocked, swapping) still accepts connections into the
socket's backlog, so every check would wait its whole deadline while Samba waits
for it. After one timeout the hook writes ``samba-check.backoff`` (the wall-clock
time until which to stop asking); checks in that window apply ``on_undecided`` at
once. Any answer from the daemon (a check, or a change the sync hook got stored)
removes the file. A file from a far future (clock set back, a stale copy) is
ignored: the window never exceeds the configured length.
"""

from __future__ import annotations

import os

BACKOFF_NAME = "samba-check.backoff"
DEFAULT_WINDOW = 30.0


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, BACKOFF_NAME)


def active_until(state_dir: str, now: float, window: float) -> float | None:
    """The end of the current back-off window, or None when the daemon should be asked."""
    try:
        with open(_path(state_dir), "rb") as handle:
            until = float(handle.read().strip() or b"0")
    except (OSError, ValueError):
        return None
    return until if now < until <= now + window else None


def start(state_dir: str, now: float, window: float) -> None:
    """Open a window of ``window`` seconds (atomic replace; a lost write only costs a wait)."""
    path = _path(state_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{now + window:.3f}\n".encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        pass  # no state dir: every check waits its deadline, as without a back-off


def clear(state_dir: str) -> None:
    try:
        os.unlink(_path(state_dir))
    except OSError:
        pass
