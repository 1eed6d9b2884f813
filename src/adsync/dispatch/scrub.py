"""Make an outcome's reason safe to store and show (pure)."""

from __future__ import annotations

from adsync.secret import REDACTED, Secret

MAX_REASON = 500


def scrub_reason(reason: str, password: Secret) -> str:
    """Remove the password (plain and as ``repr`` would escape it) and cap the length.

    A plugin is told never to put the password into a reason; this is the net
    under that rule, since reasons end up in the database and the CLI.
    """
    text = str(reason)
    value = password.reveal()
    if value:
        forms = {value, repr(value)[1:-1], repr(value.encode())[2:-1]}
        for form in sorted(forms, key=len, reverse=True):
            if form:
                text = text.replace(form, REDACTED)
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1] + "…"
    return text
