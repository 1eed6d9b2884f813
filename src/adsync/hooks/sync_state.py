"""What samba-sync remembers between calls: the initialisation baseline and sent keys.

A small JSON file next to the queue (``samba-sync.state``), updated under an
exclusive ``flock`` and replaced atomically. It holds no secret: the baseline
time, a count of skipped initial-dump objects, and per objectGUID the last key
version that the daemon acknowledged.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STATE_NAME = "samba-sync.state"


@dataclass
class SyncState:
    baseline_ms: int | None = None
    initial_skipped: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # objectGUID -> key version

    def to_json(self) -> str:
        return json.dumps(
            {
                "baseline_ms": self.baseline_ms,
                "initial_skipped": self.initial_skipped,
                "acked": self.acked,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> SyncState:
        data = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("state file is not a JSON object")
        baseline = data.get("baseline_ms")
        acked = data.get("acked") or {}
        return cls(
            baseline_ms=int(baseline) if baseline is not None else None,
            initial_skipped=int(data.get("initial_skipped", 0)),
            acked={str(k): int(v) for k, v in dict(acked).items()},
        )


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_NAME


@contextmanager
def locked_state(state_dir: Path) -> Iterator[SyncState]:
    """Read, lock, yield, and write back the state (atomically) when the block succeeds."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_path(state_dir)
    lock_fd = os.open(state_dir / (STATE_NAME + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            state = SyncState.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = SyncState()
        before = state.to_json()
        yield state
        after = state.to_json()
        if after != before:
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(after)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
    finally:
        os.close(lock_fd)


def set_baseline(state_dir: Path, now_ms: int | None = None) -> int:
    """Mark "now" as the moment syncpasswords' cache was initialised; resets sent keys."""
    baseline = now_ms if now_ms is not None else int(time.time() * 1000)
    with locked_state(state_dir) as state:
        state.baseline_ms = baseline
        state.initial_skipped = 0
    return baseline
