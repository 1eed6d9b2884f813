"""Loud messages from a hook: to syslog (the journal reads ``/dev/log``) and to stderr.

Samba logs a ``check password script``'s stderr in its own log and
syncpasswords writes the script's output to its log; syslog reaches whoever
watches the DC's journal even when those logs are not read. Never a password.
"""

from __future__ import annotations

import sys

IDENT = "adsync-samba-hook"


def alert(message: str, *, error: bool = True, stderr: bool = True) -> None:
    """``stderr`` False: the sync hook, whose output must start with ``DONE-EXIT:``."""
    import syslog

    syslog.openlog(IDENT, syslog.LOG_PID, syslog.LOG_DAEMON)
    syslog.syslog(syslog.LOG_ERR if error else syslog.LOG_WARNING, message)
    syslog.closelog()
    if stderr:
        sys.stderr.write(f"{IDENT}: {message}\n")
        sys.stderr.flush()
