"""Samba's ``check password script``: one CHECK, an exit code, always in time.

Samba runs the script before it commits a password (stdin: the password, UTF-8,
no newline; ``SAMBA_CPS_ACCOUNT_NAME`` and, when set, ``…_FULL_NAME``). Exit 0
accepts, anything else rejects; Samba kills the script after 10 s.

When the daemon is down, slow or undecided, ``precheck.on_undecided`` applies
within ``samba.check_deadline``. The config is read on every call; if it cannot
be read, the ``--on-undecided`` written on the smb.conf line applies (so a moved
or broken config does not lock the domain) and the reason goes to syslog. After
a timeout, checks answer at once for a back-off window (``adsync.hooks.backoff``).
"""

from __future__ import annotations

import os
import time

from adsync.hooks import backoff
from adsync.hooks.alert import alert
from adsync.hooks.settings import HookConfigError, HookSettings, load_hook_settings

ACCEPT = 0
REJECT = 1


class CheckOptions:
    """What the smb.conf line says (``adsync samba setup`` writes it)."""

    __slots__ = ("backoff", "config", "domain", "on_undecided")

    def __init__(
        self,
        config: str,
        *,
        on_undecided: str = "accept",
        domain: str = "",
        backoff: float = backoff.DEFAULT_WINDOW,
    ) -> None:
        self.config = config
        self.on_undecided = on_undecided  # only when the config cannot be read
        self.domain = domain  # the NetBIOS domain (smb.conf ``workgroup``)
        self.backoff = backoff


def _undecided(on_undecided: str, why: str) -> tuple[int, str]:
    code = ACCEPT if on_undecided == "accept" else REJECT
    return code, f"undecided ({why}): on_undecided={on_undecided}"


def run_check(
    options: CheckOptions, env: dict[str, str], stdin: bytes, *, now: float | None = None
) -> tuple[int, str]:
    """(exit code, message for Samba's log); the message never holds the password."""
    account = env.get("SAMBA_CPS_ACCOUNT_NAME", "")
    if not account:
        return REJECT, "SAMBA_CPS_ACCOUNT_NAME is not set: not run by Samba?"
    try:
        stdin.decode("utf-8")
    except UnicodeDecodeError:
        return REJECT, "the password on stdin is not UTF-8"
    if not stdin:
        return REJECT, "no password on stdin"
    try:
        settings = load_hook_settings(options.config)
    except HookConfigError as exc:
        alert(f"samba-check: {exc}; applying --on-undecided={options.on_undecided}", stderr=False)
        return _undecided(options.on_undecided, f"the adsync config cannot be read: {exc}")
    return _ask(settings, options, account, env.get("SAMBA_CPS_FULL_NAME", ""), stdin, now)


def _ask(
    settings: HookSettings,
    options: CheckOptions,
    account: str,
    full_name: str,
    password: bytes,
    now: float | None,
) -> tuple[int, str]:
    if settings.unix_socket is None:
        return _undecided(settings.on_undecided, "ingest.unix_socket is not configured")
    wall = time.time() if now is None else now
    until = backoff.active_until(settings.state_dir, wall, options.backoff)
    if until is not None:
        why = f"the daemon timed out recently; not asked until {time.ctime(until)}"
        return _undecided(settings.on_undecided, why)

    from adsync.hooks.frames import DaemonTimeout, WireError, check_frame, exchange

    frame = check_frame(
        account=account,
        password=password,
        full_name=full_name,
        domain=options.domain,
        source_host=os.uname().nodename,
    )
    try:
        status, reason = exchange(settings.unix_socket, frame, settings.check_deadline)
    except DaemonTimeout:
        backoff.start(settings.state_dir, wall, options.backoff)
        alert(
            f"samba-check: no answer from the daemon at {settings.unix_socket} within "
            f"{settings.check_deadline:g}s; on_undecided={settings.on_undecided} for the "
            f"next {options.backoff:g}s without asking",
            error=False,
            stderr=False,
        )
        return _undecided(settings.on_undecided, "the daemon did not answer in time")
    except (WireError, OSError) as exc:
        why = f"daemon at {settings.unix_socket}: {type(exc).__name__}"
        return _undecided(settings.on_undecided, why)
    backoff.clear(settings.state_dir)
    if status == 0:
        return ACCEPT, "accepted"
    if status == 1:
        return REJECT, f"rejected: {reason}" if reason else "rejected"
    return _undecided(settings.on_undecided, reason or "the daemon could not decide in time")
