"""adsync.accounts: the built-in exclusions and the case-insensitive glob (the same rules as
native/lsa_filter/core/exclude.c)."""

from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adsync.accounts import ExclusionKind, base_name, exclusion, glob_match, is_excluded


@pytest.mark.parametrize(
    ("account", "kind"),
    [
        ("krbtgt", ExclusionKind.KRBTGT),
        ("KRBTGT", ExclusionKind.KRBTGT),
        ("CORP\\krbtgt", ExclusionKind.KRBTGT),
        ("krbtgt_12345", ExclusionKind.RODC_KRBTGT),
        ("KrbTgt_9", ExclusionKind.RODC_KRBTGT),
        ("HOST1$", ExclusionKind.MACHINE),
        ("CORP\\DC01$", ExclusionKind.MACHINE),
        ("gmsa-web$", ExclusionKind.MACHINE),
        ("TRUSTED$", ExclusionKind.MACHINE),
    ],
)
def test_builtin_exclusions(account: str, kind: ExclusionKind) -> None:
    assert exclusion(account) is kind


@pytest.mark.parametrize(
    "account", ["alice", "krbtgt2", "krbtgtx", "xkrbtgt", "host$1", "$x", "", "CORP\\alice"]
)
def test_users_are_not_excluded(account: str) -> None:
    assert exclusion(account) is None
    assert not is_excluded(account)


def test_extra_patterns() -> None:
    extra = ["svc_*", "MSOL_????????????", ""]
    assert exclusion("SVC_Backup", extra) is ExclusionKind.CONFIGURED
    assert exclusion("CORP\\svc_sql", extra) is ExclusionKind.CONFIGURED
    assert exclusion("msol_0123456789ab", extra) is ExclusionKind.CONFIGURED
    assert exclusion("msol_0123", extra) is None
    assert exclusion("alice", extra) is None
    assert exclusion("HOST1$", extra) is ExclusionKind.MACHINE  # built-ins first


@pytest.mark.parametrize(
    ("pattern", "name", "want"),
    [
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "acb", False),
        ("a?c", "AbC", True),
        ("a?c", "ac", False),
        ("*x*y", "xxxx", False),
        ("[ab]", "a", False),  # only * and ? are special: brackets are literal
        ("[ab]", "[AB]", True),
        ("a.c", "abc", False),
        ("", "", True),
        ("*", "", True),
        ("a?", "a\U0001f600", True),  # one character, astral too
        ("ÄČЖ", "äčж", True),
    ],
)
def test_glob(pattern: str, name: str, want: bool) -> None:
    assert glob_match(pattern, name) is want


def test_base_name() -> None:
    assert base_name("CORP\\alice") == "alice"
    assert base_name("a\\b\\c") == "c"
    assert base_name("alice") == "alice"


ALPHABET = st.sampled_from("abAB$_*?\\")


@given(st.text(ALPHABET, max_size=12), st.text("abAB$_", max_size=12))
def test_glob_agrees_with_fnmatch_without_brackets(pattern: str, name: str) -> None:
    """fnmatch is the stdlib reference for '*' and '?' (no '[' in these patterns)."""
    ref = re.compile(fnmatch.translate(pattern.lower()), re.DOTALL)
    assert glob_match(pattern, name) is (ref.match(name.lower()) is not None)


@given(st.text(max_size=30))
def test_a_name_matches_itself_escaped_free(name: str) -> None:
    if "*" not in name and "?" not in name:
        assert glob_match(name, name)
        assert glob_match(name.upper(), name.lower()) or name.upper().lower() != name.lower()
    assert glob_match("*", name)
