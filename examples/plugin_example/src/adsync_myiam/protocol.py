# file: src/adsync_myiam/protocol.py
"""MyIAM's answers and what they mean (pure: no I/O, testable without a socket)."""

from __future__ import annotations

from typing import Any

from adsync.plugin import Outcome, Secret, scrub
from adsync.plugin.http import parse_retry_after, status_outcome


def classify(
    status: int, body: dict[str, Any], retry_after: str | None, password: Secret
) -> Outcome:
    """204 stored; 422 password_policy refused; 404 user_not_found; the rest by status."""
    code = body.get("code")
    if status == 204:
        return Outcome.delivered()
    if status == 422 and code == "password_policy":
        return Outcome.rejected(scrub(str(body.get("message", "")), password))
    if status == 404 and code == "user_not_found":
        return Outcome.unknown_user()
    # No answer of MyIAM's own (a bare 404 is a wrong url): the toolkit's rules.
    return status_outcome(status, "set password", retry_after=parse_retry_after(retry_after))
