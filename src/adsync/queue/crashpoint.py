"""A test aid: the daemon SIGKILLs itself right before or right after its Nth SQLite commit.

Set ``ADSYNC_TEST_CRASH_AT_COMMIT=N`` (after the Nth commit) or ``N:before`` before
starting ``adsync run``; the durability harness (tests/durability/) uses it to kill the
daemon at every commit boundary of a scripted workload. ``ADSYNC_TEST_COMMIT_COUNT_FILE``
names a file that receives the running commit count after each commit, so a first run
can count the boundaries. Neither is meant for production: the daemon logs a warning at
start when either is set (``armed()``). Every transaction of the queue commits here.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

CRASH_ENV = "ADSYNC_TEST_CRASH_AT_COMMIT"
COUNT_ENV = "ADSYNC_TEST_COMMIT_COUNT_FILE"


def _parse(value: str | None) -> tuple[int, bool] | None:
    """``"N"`` → (N, after); ``"N:before"`` → (N, before); unset or empty → None."""
    if not value:
        return None
    number, _, when = value.partition(":")
    if when not in ("", "after", "before") or not number.isdigit() or int(number) < 1:
        raise ValueError(f"{CRASH_ENV} must be N, N:after or N:before with N >= 1")
    return int(number), when != "before"


_target = _parse(os.environ.get(CRASH_ENV))
_count_file = os.environ.get(COUNT_ENV) or None
_lock = threading.Lock()
_commits = 0


def armed() -> str | None:
    """What is set, for the start-up warning; None in a normal run."""
    if _target is None and _count_file is None:
        return None
    parts = []
    if _target is not None:
        parts.append(f"{CRASH_ENV}={_target[0]}:{'after' if _target[1] else 'before'}")
    if _count_file is not None:
        parts.append(f"{COUNT_ENV}={_count_file}")
    return ", ".join(parts)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def commit(run_commit: Callable[[], object]) -> None:
    """Run the queue's COMMIT (``queue.sql.transaction`` passes it: the one place it commits)."""
    if _target is None and _count_file is None:
        run_commit()
        return
    global _commits
    with _lock:
        number = _commits + 1
        if _target == (number, False):
            _die()
        run_commit()
        _commits = number
        if _count_file is not None:  # replaced whole: a kill never leaves it empty
            staged = f"{_count_file}.new"
            with open(staged, "w", encoding="ascii") as out:
                out.write(str(number))
            os.replace(staged, _count_file)
        if _target == (number, True):
            _die()
