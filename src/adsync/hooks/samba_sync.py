"""The ``samba-tool user syncpasswords --script`` hook: one object in, one CHANGE out.

syncpasswords runs the script once per object (``Popen(script)``: a path, no
arguments, no shell) and reads its stdout *and* stderr as one reply; it goes on
only if the reply starts with ``DONE-EXIT: ``. Any other reply makes it exit with
an error, and the object is re-delivered when it is started again (the per-object
cache entry and the DirSync cookie advance only after success; Samba 4.17
``python/samba/netcmd/user.py``, ``run_sync_command``).

So a change is never lost: while the daemon is unreachable or busy, this hook
waits and resends (syncpasswords simply waits for it; Samba itself is not
affected), and prints ``DONE-EXIT:`` only after ACK 0. Should the wait pass
``--max-wait`` or syncpasswords go away, it exits non-zero without ``DONE-EXIT``
and the object is re-delivered by the next syncpasswords run. Diagnostics go
after the ``DONE-EXIT:`` line, never before it.
"""

from __future__ import annotations

import os
import time

from adsync.hooks import backoff, sync_state
from adsync.hooks.alert import alert
from adsync.hooks.ldif import LdifError, parse_one
from adsync.hooks.samba_event import SambaChange, Skip, interpret, is_initial_dump
from adsync.hooks.settings import HookConfigError, HookSettings, load_hook_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_OK = 0
EXIT_BAD_INPUT = 65  # EX_DATAERR: syncpasswords stops; fix and restart re-delivers
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: gave up waiting; re-delivered by the next run
EXIT_CONFIG = 78  # EX_CONFIG: the config cannot be read; re-delivered once it can
SEND_TIMEOUT = 10.0  # one attempt; then the hook backs off and resends


class SyncResult:
    __slots__ = ("exit_code", "line", "notes")

    def __init__(self, exit_code: int, line: str, notes: list[str] | None = None) -> None:
        self.exit_code = exit_code
        self.line = line  # "DONE-EXIT: …" on success, an error otherwise
        self.notes = notes or []

    def output(self) -> str:
        return "\n".join([self.line, *self.notes]) + "\n"


def _parent_watch() -> Callable[[], bool]:
    parent = os.getppid()
    return lambda: os.getppid() == parent


class Retry:
    """Backoff while the daemon is away; ``max_wait`` None waits as long as the parent lives."""

    def __init__(
        self,
        *,
        initial: float = 0.2,
        cap: float = 5.0,
        max_wait: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        parent_alive: Callable[[], bool] | None = None,
    ) -> None:
        self.initial, self.cap, self.max_wait = initial, cap, max_wait
        self.sleep, self.clock = sleep, clock
        self.parent_alive = parent_alive or _parent_watch()


class SyncOptions:
    __slots__ = ("config", "domain", "max_wait")

    def __init__(self, config: str, *, domain: str = "", max_wait: float | None = None) -> None:
        self.config = config
        self.domain = domain  # the NetBIOS domain (smb.conf ``workgroup``)
        self.max_wait = max_wait


def run_sync(
    options: SyncOptions,
    stdin: bytes,
    *,
    retry: Retry | None = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> SyncResult:
    retry = retry or Retry(max_wait=options.max_wait)
    try:
        item = interpret(parse_one(stdin))
    except LdifError as exc:
        return SyncResult(EXIT_BAD_INPUT, f"adsync samba-sync: cannot read the object: {exc}")
    if isinstance(item, Skip):
        return SyncResult(EXIT_OK, f"DONE-EXIT: skipped {item.reason}")
    try:
        settings = load_hook_settings(options.config)
    except HookConfigError as exc:
        message = f"samba-sync: {exc}; not sent, syncpasswords re-delivers it once it can be read"
        alert(message, stderr=False)
        return SyncResult(EXIT_CONFIG, f"adsync {message}")
    try:
        return _forward(settings, options, item, retry, now_ms)
    except OSError as exc:
        # No state (read-only or missing dir): forward anyway; the daemon's event-id
        # idempotency still collapses repeats, but the initial dump cannot be told apart.
        result = _send(settings, options, item, retry, now_ms)
        result.notes.append(f"note: state in {settings.state_dir} unusable ({exc.strerror})")
        return result


def _forward(
    settings: HookSettings,
    options: SyncOptions,
    change: SambaChange,
    retry: Retry,
    now_ms: Callable[[], int],
) -> SyncResult:
    label = f"{change.account} key version {change.key_version}"
    notes: list[str] = []
    state = sync_state.load_state(settings.state_dir)
    if state.acked:  # an older JSON state file: its sent keys move to samba-sync.acked/
        sync_state.migrate(settings.state_dir)
    if sync_state.read_acked(settings.state_dir, change.guid) == change.key_version:
        return SyncResult(EXIT_OK, f"DONE-EXIT: skipped {label}: already delivered")
    if settings.initial_dump == "skip":
        baseline = state.baseline_ms
        if baseline is None:
            notes.append(
                "note: no baseline (run `adsync samba baseline` before initialising "
                "syncpasswords); forwarding, so nothing is lost"
            )
        elif is_initial_dump(change, baseline):
            skipped = sync_state.count_skipped(settings.state_dir)
            return SyncResult(
                EXIT_OK,
                f"DONE-EXIT: skipped {label}: initial dump "
                f"({skipped} skipped since initialisation)",
            )
    result = _send(settings, options, change, retry, now_ms)
    if result.exit_code == EXIT_OK and result.line.startswith("DONE-EXIT: stored"):
        sync_state.write_acked(settings.state_dir, change.guid, change.key_version)
        backoff.clear(settings.state_dir)  # the daemon answers again: checks may ask it
    result.notes[:0] = notes
    return result


def _send(
    settings: HookSettings,
    options: SyncOptions,
    change: SambaChange,
    retry: Retry,
    now_ms: Callable[[], int],
) -> SyncResult:
    from adsync.hooks.frames import DaemonRefused, WireError, change_frame, exchange

    label = f"{change.account} key version {change.key_version}"
    if settings.unix_socket is None:
        return SyncResult(EXIT_TEMPFAIL, "adsync samba-sync: ingest.unix_socket is not configured")
    started = retry.clock()
    delay = retry.initial
    attempts = 0
    last_problem = ""
    host = os.uname().nodename
    while True:
        attempts += 1
        frame = change_frame(
            account=change.account,
            password=change.password,
            changed_at_ms=change.pwd_last_set_ms or now_ms(),
            event_id=change.event_id,
            domain=options.domain,
            source_host=host,
            rid=change.rid,
            object_guid_le=change.guid_le,
        )
        try:
            status, reason = exchange(settings.unix_socket, frame, SEND_TIMEOUT)
            if status == 0:
                waited = retry.clock() - started
                notes = (
                    [f"note: stored after {attempts} attempts, {waited:.1f}s"]
                    if attempts > 1
                    else []
                )
                return SyncResult(EXIT_OK, f"DONE-EXIT: stored {label}", notes)
            if status == 1:
                return SyncResult(
                    EXIT_OK, f"DONE-EXIT: refused by the daemon, not resent: {label}: {reason}"
                )
            last_problem = f"daemon busy: {reason}"
        except DaemonRefused as exc:
            return SyncResult(EXIT_BAD_INPUT, f"adsync samba-sync: {label}: {exc}")
        except (WireError, OSError) as exc:
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
