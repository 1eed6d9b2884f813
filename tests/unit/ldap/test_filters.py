from __future__ import annotations

import pytest

from adsync.backends.ldap.filters import build_filter, check_filter_template, escape_filter_value


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("alice", "alice"),
        ("*", "\\2a"),
        ("a(b)c", "a\\28b\\29c"),
        ("back\\slash", "back\\5cslash"),
        ("nul\x00", "nul\\00"),
        ("Jürgen", "Jürgen"),
    ],
)
def test_escape_rfc4515(raw: str, escaped: str) -> None:
    assert escape_filter_value(raw) == escaped


def test_build_filter_escapes_an_injection() -> None:
    assert build_filter("(uid={account})", "alice)(uid=*") == "(uid=alice\\29\\28uid=\\2a)"


def test_build_filter_substitutes_domain_once() -> None:
    template = "(&(uid={account})(o={domain}))"
    assert build_filter(template, "{domain}", "EX") == "(&(uid={domain})(o=EX))"


@pytest.mark.parametrize(
    "template",
    ["(uid={account})", "(&(objectClass=person)(|(uid={account})(mail={account}@x)))"],
)
def test_good_templates(template: str) -> None:
    assert check_filter_template(template) == template


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("(uid=alice)", "{account}"),
        ("uid={account}", "parenthesised"),
        ("(&(uid={account})(o={user}))", "unknown placeholder"),
        ("(&(uid={account})", "unbalanced"),
        ("(a={account}))(b=1)", "unbalanced"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_filter_template(template)
