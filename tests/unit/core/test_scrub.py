"""adsync.secret.scrub: the one scrubber removes a secret in every usual encoding."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from adsync.secret import REDACTED, Secret, scrub

PASSWORD = "Pä ss&<w0rd>/+=?"


@pytest.mark.parametrize(
    "echo",
    [
        PASSWORD,
        json.dumps(PASSWORD),
        urllib.parse.quote(PASSWORD, safe=""),
        urllib.parse.quote_plus(PASSWORD),
        PASSWORD.encode().hex(),
        PASSWORD.encode().hex().upper(),
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.urlsafe_b64encode(PASSWORD.encode()).decode().rstrip("="),
        "Pä ss&amp;&lt;w0rd&gt;/+=?",
        repr(PASSWORD.encode()),
    ],
)
def test_every_encoding_is_removed(echo: str) -> None:
    out = scrub(f"target said: {echo} (end)", Secret(PASSWORD))
    assert REDACTED in out
    assert echo.strip("'\"b") not in out


def test_redaction_comes_before_the_cut() -> None:
    text = "x" * 495 + PASSWORD
    out = scrub(text, Secret(PASSWORD), max_len=500)
    assert PASSWORD[:4] not in out
    assert len(out) <= 500


def test_plain_strings_and_none_are_accepted_and_text_is_one_printable_line() -> None:
    assert scrub("a\nb\x00c  d", None, "") == "a b c d"
    assert scrub("key=abc", "abc") == f"key={REDACTED}"
