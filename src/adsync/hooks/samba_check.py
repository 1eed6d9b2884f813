"""Samba's ``check password script``: one CHECK, an exit code, always in time.

Samba runs the script before it commits a password (stdin: the password, UTF-8,
no newline; ``SAMBA_CPS_ACCOUNT_NAME`` and, when set, ``…_USER_PRINCIPAL_NAME``
and ``…_FULL_NAME``). Exit 0 accepts, anything else rejects; Samba kills the
script after 10 s. When the daemon is down, slow or undecided the configured
``precheck.on_undecided`` applies, within ``samba.check_deadline``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adsync.hooks.settings import HookSettings
from adsync.secret import Secret

ACCEPT = 0
REJECT = 1


@dataclass(frozen=True)
class CheckDecision:
    exit_code: int
    message: str  # for Samba's log; never holds the password


def _undecided(settings: HookSettings, why: str) -> CheckDecision:
    code = ACCEPT if settings.on_undecided == "accept" else REJECT
    return CheckDecision(code, f"undecided ({why}): on_undecided={settings.on_undecided}")


def run_check(
    settings: HookSettings,
    env: Mapping[str, str],
    stdin: bytes,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> CheckDecision:
    start = clock()
    account = env.get("SAMBA_CPS_ACCOUNT_NAME", "")
    if not account:
        return CheckDecision(REJECT, "SAMBA_CPS_ACCOUNT_NAME is not set: not run by Samba?")
    try:
        password = Secret(stdin.decode("utf-8"))
    except UnicodeDecodeError:
        return CheckDecision(REJECT, "the password on stdin is not UTF-8")
    if not password:
        return CheckDecision(REJECT, "no password on stdin")
    if settings.unix_socket is None:
        return _undecided(settings, "ingest.unix_socket is not configured")

    from adsync.ingest.client import IngestClient, IngestError

    deadline = start + settings.check_deadline
    try:
        with IngestClient.unix(settings.unix_socket, timeout=settings.check_deadline) as client:
            client.timeout = max(0.001, deadline - clock())
            reply = client.check(
                account=account,
                password=password,
                full_name=env.get("SAMBA_CPS_FULL_NAME", ""),
                set_operation=False,  # Samba does not tell a reset from a change
                source_host=socket.gethostname(),
            )
    except (IngestError, OSError) as exc:
        return _undecided(settings, f"daemon at {settings.unix_socket}: {type(exc).__name__}")
    status = int(reply.status)
    if status == 0:
        return CheckDecision(ACCEPT, "accepted")
    if status == 1:
        return CheckDecision(REJECT, f"rejected: {reply.reason}" if reply.reason else "rejected")
    return _undecided(settings, reply.reason or "the daemon could not decide in time")
