"""SecretIndex finds what one regex alternation of every form, longest first, would find."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adsync.secret
from adsync.secret import REDACTED, SecretIndex, encoded_forms, scrub

chars = st.characters(blacklist_categories=("Cs",))
values = st.text(chars, min_size=1, max_size=12)


def index_of(*secrets: str) -> SecretIndex:
    return SecretIndex.of(*secrets)


class Reference:
    """The rule written the slow way: leftmost match, longest form first; a form shorter
    than 4 characters only as a whole token (no letter or digit next to it)."""

    def __init__(self, secrets: list[str]) -> None:
        forms = set().union(*(encoded_forms(s) for s in secrets))
        self.forms = sorted(forms, key=len, reverse=True)

    def _at(self, text: str, i: int) -> str | None:
        for form in self.forms:
            if not text.startswith(form, i):
                continue
            end = i + len(form)
            if len(form) < 4 and (
                (i > 0 and text[i - 1].isalnum()) or (end < len(text) and text[end].isalnum())
            ):
                continue
            return form
        return None

    def sub(self, replacement: str, text: str) -> str:
        out, i = [], 0
        while i < len(text):
            form = self._at(text, i)
            if form is None:
                out.append(text[i])
                i += 1
            else:
                out.append(replacement)
                i += len(form)
        return "".join(out)

    def search(self, text: str) -> bool:
        return any(self._at(text, i) is not None for i in range(len(text)))


def reference(secrets: list[str]) -> Reference:
    return Reference(secrets)


@settings(max_examples=300)
@given(st.lists(values, min_size=1, max_size=5), st.lists(st.text(chars, max_size=20)), st.data())
def test_same_result_as_one_regex_of_every_form(
    secrets: list[str], noise: list[str], data: st.DataObject
) -> None:
    forms = sorted(set().union(*(encoded_forms(s) for s in secrets)))
    pieces = [*noise, *data.draw(st.lists(st.sampled_from(forms), max_size=6))]
    text = "".join(data.draw(st.permutations(pieces)))
    pattern = reference(secrets)
    index = index_of(*secrets)
    assert index.redact(text) == pattern.sub(REDACTED, text)
    assert index.found_in(text) == pattern.search(text)


def test_short_secrets_and_forms_at_the_edges() -> None:
    index = index_of("pw", "x")
    assert index.redact("pw") == REDACTED
    assert index.redact("a pw b x") == f"a {REDACTED} b {REDACTED}"
    assert index.redact("7077 and 78") == f"{REDACTED} and {REDACTED}"  # hex forms


def test_a_form_shorter_than_four_characters_matches_only_as_a_whole_token() -> None:
    """Issue 13 item 4: a one-character password must not turn every such letter of a log
    line into ***; it is redacted where it stands alone."""
    index = index_of("e")
    line = 'event delivered: e, (e) "e" e1 be'
    assert index.redact(line) == f'event delivered: {REDACTED}, ({REDACTED}) "{REDACTED}" e1 be'
    assert not index.found_in("the webhook rejected the change")
    assert index.found_in("password=e")
    assert index_of("a1").redact("a1b2 a1 Ba1") == f"a1b2 {REDACTED} Ba1"
    long_one = index_of("Abcd")  # four and more: anywhere, as before
    assert long_one.redact("xAbcdx") == f"x{REDACTED}x"


def test_longest_form_wins_and_updates_follow_the_live_set() -> None:
    index = SecretIndex()
    index.update({"secret", "secret-longer"})
    assert index.redact("[secret-longer]") == f"[{REDACTED}]"
    index.update({"secret"})
    assert index.redact("[secret-longer]") == f"[{REDACTED}-longer]"
    index.update(set())
    assert index.redact("secret") == "secret"


def test_a_form_shared_by_two_values_stays_while_one_holds_it() -> None:
    index = index_of("ab c", "ab+c")  # quote_plus('ab c') is 'ab+c'
    shared = encoded_forms("ab c") & encoded_forms("ab+c")
    assert shared == {"ab+c"}
    index.update({"ab+c"})
    for form in shared:
        assert index.redact(form) == REDACTED
    assert index.redact("ab c") == "ab c"


@given(
    st.text(min_size=1, max_size=40).filter(
        lambda v: v.encode("utf-8", "ignore") == v.encode("utf-8", "surrogatepass")
    )
)
@settings(max_examples=300, deadline=None)
def test_no_form_is_shorter_than_its_value(value: str) -> None:
    """``scrub`` skips a secret longer than the text on the strength of this."""
    assert all(len(form) >= len(value) for form in encoded_forms(value))


def _forms_the_slow_way(value: str) -> set[str]:
    """encoded_forms as first written: each encoder called by its public name."""
    import base64
    import html
    import json
    import urllib.parse

    raw = value.encode("utf-8")
    forms = {
        value,
        repr(value)[1:-1],
        repr(raw)[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value, quote=True),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        raw.hex(),
        raw.hex().upper(),
        value.encode("utf-16-le", "surrogatepass").hex(),
    }
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode("ascii")
        forms.update({text, text.rstrip("=")})
    return {form for form in forms if form}


@given(st.text(chars, min_size=1, max_size=40))
@settings(max_examples=500, deadline=None)
def test_the_fast_encoders_give_the_public_encoders_forms(value: str) -> None:
    assert encoded_forms(value) == _forms_the_slow_way(value)


def test_scrub_skips_forms_that_cannot_fit_and_still_finds_those_that_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    real = adsync.secret.encoded_forms
    monkeypatch.setattr(adsync.secret, "encoded_forms", lambda v: built.append(v) or real(v))
    password = "Long-Enough-Password-1"
    assert scrub("HTTP 204", password) == "HTTP 204"
    assert built == []  # no form of a 22-character password fits in 8 characters
    assert REDACTED in scrub(f"echo {password}", password)
    assert built == [password]
