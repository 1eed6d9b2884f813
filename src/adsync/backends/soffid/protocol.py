"""Soffid's /propagatepass wire format, as pure functions (no I/O).

Facts from SoffidIAM/syncserver (PropagatePasswordServlet.java, eris-ad-filter
QueueManager.cpp): GET only, no authentication constraint, parameters
``[test=true&]user=&password=&domain=`` percent-encoded byte by byte, answers
are bare text/plain tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adsync.plugin import CheckResult, Outcome, Secret
from adsync.plugin.http import is_transient, status_outcome

PATH = "/propagatepass"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def eris_quote(value: str) -> str:
    """Percent-encode like the eris client: every byte outside [A-Za-z0-9] as %XX (upper case)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in value.encode("utf-8"))


def query_string(user: str, password: Secret, agent: str, *, test: bool) -> str:
    """The query exactly as eris sends it (parameter order included)."""
    parts = [] if not test else ["test=true"]
    parts += [
        f"user={eris_quote(user)}",
        f"password={eris_quote(password.reveal())}",
        f"domain={eris_quote(agent)}",
    ]
    return "&".join(parts)


Verdict = Literal["final", "next"]


@dataclass(frozen=True, slots=True)
class Answer:
    """How one server's answer is classified; ``next`` means: try the next server."""

    step: Verdict
    outcome: Outcome


def classify_propagation(status: int, body: str) -> Answer:
    """Map one answer of ``GET /propagatepass?user=…`` (no test) to an outcome.

    ``body`` is already scrubbed. The servlet writes ``ok`` after queueing the task and
    nothing when no account matches the user on that agent (a 200 with an empty body).
    Any other 200 body did not come from the servlet: it is reported and not sent to the
    next server (eris counts any body as success, so it may well have been taken).
    A ``500 ERROR: …`` (InternalErrorException) is tried on the next server; when it is
    the last answer it is counted like a rejection (``max_rejections``) and marks the
    backend misconfigured: a wrong agent name answers it forever.
    """
    text = body.strip()
    if status == 200:
        if text == "ok":
            return Answer("final", Outcome.delivered("queued by Soffid (PropagatePassword)"))
        if text == "":
            return Answer(
                "final",
                Outcome.unknown_user("Soffid has no account for this user on the agent"),
            )
        return Answer(
            "final",
            Outcome.configuration(
                f"unexpected 200 answer {_short(text)!r} (not Soffid's servlet: check url)"
            ),
        )
    if status == 500 and text.startswith("ERROR:"):
        return Answer(
            "next",
            Outcome.rejected(
                f"Soffid error: {_short(text[6:].strip())} (check the agent name; counted "
                "against max_rejections)",
                misconfigured=True,
            ),
        )
    if is_transient(status):
        return Answer("next", Outcome.unreachable(f"HTTP {status}"))
    return Answer("final", status_outcome(status))


def classify_check(status: int, body: str) -> CheckResult | None:
    """Map one answer of the policy check; None: this server gave no usable answer."""
    if status != 200:
        return None
    text = body.strip()
    if text.startswith("OK"):
        return CheckResult.accept()
    if text.startswith("IGNORE"):
        return CheckResult.accept("no Soffid password policy applies")
    if text.startswith("ERROR|"):
        return CheckResult.reject(text[len("ERROR|") :].strip() or "rejected by Soffid policy")
    return None


def _short(text: str, limit: int = 200) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "…"
