"""SecretIndex finds what one regex alternation of every form, longest first, would find."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from adsync.secret import REDACTED, SecretIndex, encoded_forms

chars = st.characters(blacklist_categories=("Cs",))
values = st.text(chars, min_size=1, max_size=12)


def index_of(*secrets: str) -> SecretIndex:
    return SecretIndex.of(*secrets)


def reference(secrets: list[str]) -> re.Pattern[str]:
    """The rule written the slow way: leftmost match, longest form first."""
    forms = set().union(*(encoded_forms(s) for s in secrets))
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


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
    assert index.found_in(text) == (pattern.search(text) is not None)


def test_short_secrets_and_forms_at_the_edges() -> None:
    index = index_of("pw", "x")
    assert index.redact("pw") == REDACTED
    assert index.redact("a pw b x") == f"a {REDACTED} b {REDACTED}"
    assert index.redact("7077 and 78") == f"{REDACTED} and {REDACTED}"  # hex forms


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
