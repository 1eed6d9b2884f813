"""What samba-sync remembers between calls: the initialisation baseline and sent keys.

Next to the queue (``state_dir``), nothing secret, no JSON (the hook starts once
per event and ``json`` would cost it ~5 ms):

* ``samba-sync.state``: ``baseline_ms N`` and ``initial_skipped N`` lines, rewritten
  atomically under an exclusive ``flock`` of ``samba-sync.state.lock``. The
  baseline (``adsync samba baseline``) is fsynced: it decides what is skipped.
* ``samba-sync.acked/<objectGUID>``: the last key version the daemon stored for
  that account. One small file per account, so a call costs the same with 50,000
  accounts as with 5. Not fsynced: losing one only re-sends a change, which the
  daemon collapses by its event id.

A state file in the older JSON form is read and rewritten in this form.
"""

from __future__ import annotations

import fcntl
import os

STATE_NAME = "samba-sync.state"
ACKED_DIR = "samba-sync.acked"


class SyncState:
    __slots__ = ("acked", "baseline_ms", "initial_skipped")

    def __init__(
        self,
        baseline_ms: int | None = None,
        initial_skipped: int = 0,
        acked: dict[str, int] | None = None,
    ) -> None:
        self.baseline_ms = baseline_ms
        self.initial_skipped = initial_skipped
        self.acked = acked or {}  # only when migrating an older JSON state file

    def to_text(self) -> str:
        lines = [] if self.baseline_ms is None else [f"baseline_ms {self.baseline_ms}"]
        return "\n".join([*lines, f"initial_skipped {self.initial_skipped}"]) + "\n"

    @classmethod
    def from_text(cls, text: str) -> SyncState:
        if text.lstrip().startswith("{"):
            return _from_json(text)
        state = cls()
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, _, value = line.partition(" ")
            try:
                if key == "baseline_ms":
                    state.baseline_ms = int(value)
                elif key == "initial_skipped":
                    state.initial_skipped = int(value)
            except ValueError:
                raise ValueError(f"{STATE_NAME} line {number}: {key} is not an integer") from None
        return state


def _from_json(text: str) -> SyncState:
    import json

    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("state file is not a JSON object")
    baseline = data.get("baseline_ms")
    return SyncState(
        baseline_ms=int(baseline) if baseline is not None else None,
        initial_skipped=int(data.get("initial_skipped", 0)),
        acked={str(k): int(v) for k, v in dict(data.get("acked") or {}).items()},
    )


def state_path(state_dir: str) -> str:
    return os.path.join(state_dir, STATE_NAME)


def _read(state_dir: str) -> SyncState:
    try:
        with open(state_path(state_dir), encoding="utf-8") as handle:
            return SyncState.from_text(handle.read())
    except FileNotFoundError:
        return SyncState()


def _replace(path: str, text: str, *, durable: bool) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_state(state_dir: str) -> SyncState:
    """The state as last written (no lock: a reader sees the old or the new file whole)."""
    return _read(state_dir)


def _update(state_dir: str, change: str, value: int | None) -> SyncState:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    lock_fd = os.open(state_path(state_dir) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        state = _read(state_dir)
        for guid, version in state.acked.items():  # migrating a JSON state file
            write_acked(state_dir, guid, version)
        state.acked = {}
        if change == "baseline":
            state.baseline_ms, state.initial_skipped = value, 0
        elif change == "skip":
            state.initial_skipped += 1
        _replace(state_path(state_dir), state.to_text(), durable=change == "baseline")
        return state
    finally:
        os.close(lock_fd)


def set_baseline(state_dir: str, now_ms: int | None = None) -> int:
    """Mark "now" as the moment before syncpasswords' cache is initialised (durably)."""
    if now_ms is None:
        import time

        now_ms = int(time.time() * 1000)
    _update(state_dir, "baseline", now_ms)
    return now_ms


def migrate(state_dir: str) -> None:
    """Rewrite an older JSON state file in this form (its sent keys become acked files)."""
    _update(state_dir, "migrate", None)


def count_skipped(state_dir: str) -> int:
    """One more initial-dump object skipped; returns the count since the baseline."""
    return _update(state_dir, "skip", None).initial_skipped


def _acked_path(state_dir: str, guid: str) -> str:
    return os.path.join(state_dir, ACKED_DIR, guid)


def read_acked(state_dir: str, guid: str) -> int | None:
    """The key version last stored for this account, or None."""
    try:
        with open(_acked_path(state_dir, guid), "rb") as handle:
            return int(handle.read().strip() or b"-1")
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a damaged entry only means the change is sent again


def write_acked(state_dir: str, guid: str, key_version: int) -> None:
    os.makedirs(os.path.join(state_dir, ACKED_DIR), mode=0o700, exist_ok=True)
    _replace(_acked_path(state_dir, guid), f"{key_version}\n", durable=False)
