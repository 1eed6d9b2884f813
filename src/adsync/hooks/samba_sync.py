"""The ``samba-tool user syncpasswords --script`` hook: one object in, one CHANGE out.

syncpasswords reads the script's stdout *and* stderr as one reply and goes on
only if it starts with ``DONE-EXIT: ``; any other reply makes syncpasswords exit
with an error, and the batch is re-delivered when it is started again (the
per-object cache entry and the DirSync cookie advance only after success).

So a change is never lost: while the daemon is unreachable or busy, this hook
waits and resends (syncpasswords simply waits for it; Samba itself is not
affected), and prints ``DONE-EXIT:`` only after ACK 0. Should the wait pass
``--max-wait`` or syncpasswords go away, it exits non-zero without ``DONE-EXIT``
and the object is re-delivered by the next syncpasswords run. Diagnostics go
after the ``DONE-EXIT:`` line, never before it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from adsync.hooks.ldif import LdifError, parse_one
from adsync.hooks.samba_event import SambaChange, Skip, interpret, is_initial_dump
from adsync.hooks.settings import HookSettings
from adsync.hooks.sync_state import SyncState, locked_state

if TYPE_CHECKING:
    from adsync.ingest.codec import AckReply

EXIT_OK = 0
EXIT_BAD_INPUT = 65  # EX_DATAERR: syncpasswords stops; fix and restart re-delivers
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: gave up waiting; re-delivered by the next run


@dataclass
class SyncResult:
    exit_code: int
    line: str  # "DONE-EXIT: …" on success, an error otherwise
    notes: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join([self.line, *self.notes]) + "\n"


@dataclass
class Retry:
    """Backoff while the daemon is away; ``max_wait`` None waits as long as the parent lives."""

    initial: float = 0.2
    cap: float = 5.0
    max_wait: float | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    parent_alive: Callable[[], bool] = field(default_factory=lambda: _parent_watch())


def _parent_watch() -> Callable[[], bool]:
    parent = os.getppid()
    return lambda: os.getppid() == parent


def run_sync(
    settings: HookSettings,
    stdin: bytes,
    *,
    retry: Retry | None = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> SyncResult:
    retry = retry or Retry()
    try:
        item = interpret(parse_one(stdin))
    except LdifError as exc:
        return SyncResult(EXIT_BAD_INPUT, f"adsync samba-sync: cannot read the object: {exc}")
    if isinstance(item, Skip):
        return SyncResult(EXIT_OK, f"DONE-EXIT: skipped {item.reason}")
    try:
        with locked_state(settings.state_dir) as state:
            return _forward(settings, item, state, retry, now_ms)
    except OSError as exc:
        # No state (read-only or missing dir): forward anyway; the daemon's event-id
        # idempotency still collapses repeats, but the initial dump cannot be told apart.
        result = _send(settings, item, retry, now_ms)
        result.notes.append(f"note: state in {settings.state_dir} unusable ({exc.strerror})")
        return result


def _forward(
    settings: HookSettings,
    change: SambaChange,
    state: SyncState,
    retry: Retry,
    now_ms: Callable[[], int],
) -> SyncResult:
    guid = str(change.object_guid)
    label = f"{change.account} key version {change.key_version}"
    notes: list[str] = []
    if state.baseline_ms is None:
        state.baseline_ms = now_ms()
        notes.append("note: no initialisation baseline recorded; using this first call")
    if state.acked.get(guid) == change.key_version:
        return SyncResult(EXIT_OK, f"DONE-EXIT: skipped {label}: already delivered", notes)
    if settings.initial_dump == "skip" and is_initial_dump(change, state.baseline_ms):
        state.initial_skipped += 1
        return SyncResult(
            EXIT_OK,
            f"DONE-EXIT: skipped {label}: initial dump "
            f"({state.initial_skipped} skipped since initialisation)",
            notes,
        )
    result = _send(settings, change, retry, now_ms)
    if result.exit_code == EXIT_OK and result.line.startswith("DONE-EXIT: stored"):
        state.acked[guid] = change.key_version
    result.notes[:0] = notes
    return result


def _send(
    settings: HookSettings, change: SambaChange, retry: Retry, now_ms: Callable[[], int]
) -> SyncResult:
    from adsync.ingest.client import DaemonError, IngestError

    label = f"{change.account} key version {change.key_version}"
    if settings.unix_socket is None:
        return SyncResult(EXIT_TEMPFAIL, "adsync samba-sync: ingest.unix_socket is not configured")
    started = retry.clock()
    delay = retry.initial
    attempts = 0
    last_problem = ""
    while True:
        attempts += 1
        try:
            ack = _send_once(settings.unix_socket, change, now_ms)
            if int(ack.status) == 0:
                waited = retry.clock() - started
                line = f"DONE-EXIT: stored {label}"
                notes = (
                    [f"note: stored after {attempts} attempts, {waited:.1f}s"]
                    if attempts > 1
                    else []
                )
                return SyncResult(EXIT_OK, line, notes)
            if int(ack.status) == 1:
                return SyncResult(
                    EXIT_OK, f"DONE-EXIT: refused by the daemon, not resent: {label}: {ack.reason}"
                )
            last_problem = f"daemon busy: {ack.reason}"
        except DaemonError as exc:
            return SyncResult(EXIT_BAD_INPUT, f"adsync samba-sync: {label}: {exc}")
        except (IngestError, OSError) as exc:
            last_problem = f"daemon unreachable ({type(exc).__name__})"
        waited = retry.clock() - started
        if retry.max_wait is not None and waited >= retry.max_wait:
            return SyncResult(
                EXIT_TEMPFAIL,
                f"adsync samba-sync: {label}: {last_problem}; gave up after {waited:.1f}s "
                "(syncpasswords will re-deliver it when restarted)",
            )
        if not retry.parent_alive():
            return SyncResult(
                EXIT_TEMPFAIL, f"adsync samba-sync: {label}: syncpasswords went away; not sent"
            )
        retry.sleep(delay)
        delay = min(retry.cap, delay * 2)


def _send_once(path: Path, change: SambaChange, now_ms: Callable[[], int]) -> AckReply:
    from adsync.ingest.client import IngestClient

    with IngestClient.unix(path, timeout=10.0) as client:
        return client.change(
            account=change.account,
            password=change.password,
            changed_at_ms=change.pwd_last_set_ms or now_ms(),
            event_id=change.event_id,
            source_host=socket.gethostname(),
            rid=change.rid,
            object_guid=change.object_guid,
        )
