"""Scope rules (pure): built-in exclusions, globs, OUs, nested groups, precedence."""

from __future__ import annotations

import pytest

from adsync.accounts import builtin
from adsync.directory.scope import (
    AccountFacts,
    account_rule,
    directory_rule,
    group_key,
    in_subtree,
    normalize_dn,
)
from adsync.plugin import ScopeConfig

BASE = "DC=adsync,DC=test"
SALES = f"OU=Sales,{BASE}"


@pytest.mark.parametrize(
    ("account", "pattern"),
    [
        ("krbtgt", "krbtgt"),
        ("KRBTGT", "krbtgt"),
        ("krbtgt_8245", "krbtgt_*"),
        ("WS01$", "*$"),
        ("trust$", "*$"),
    ],
)
def test_builtin_exclusions(account: str, pattern: str) -> None:
    found = builtin(account)
    assert found is not None and found[0] == pattern
    # Not removable: an include rule that names them does not bring them back.
    assert account_rule(ScopeConfig(include_accounts=(account,)), account) == (
        f"built-in exclusion {pattern}"
    )


@pytest.mark.parametrize("account", ["alice", "krbtgt2", "xkrbtgt", "dollar$sign"])
def test_ordinary_accounts_are_not_builtin(account: str) -> None:
    assert builtin(account) is None


def test_account_globs_are_case_insensitive_and_exclusions_win() -> None:
    scope = ScopeConfig(include_accounts=("a*", "b?b"), exclude_accounts=("ADM-*",))
    assert account_rule(scope, "Alice") is None
    assert account_rule(scope, "BOB") is None
    assert account_rule(scope, "bobby") == "not in include_accounts"
    assert account_rule(ScopeConfig(exclude_accounts=("ADM-*",)), "adm-root") == (
        "exclude_accounts ADM-*"
    )
    assert account_rule(ScopeConfig(include_accounts=("*",), exclude_accounts=("a*",)), "al") == (
        "exclude_accounts a*"
    )


def test_empty_scope_admits_everyone_but_the_builtins() -> None:
    assert account_rule(ScopeConfig(), "anyone") is None
    assert directory_rule(ScopeConfig(), AccountFacts("CN=x," + BASE, frozenset())) is None
    assert not ScopeConfig(include_accounts=("a*",)).needs_directory
    assert ScopeConfig(exclude_ous=(SALES,)).needs_directory


def test_dn_normalisation_and_subtree() -> None:
    assert normalize_dn("CN=Alice Smith, OU=Sales ,DC=Adsync,DC=test") == (
        "cn=alice smith,ou=sales,dc=adsync,dc=test"
    )
    assert in_subtree("CN=a,OU=East,OU=Sales,DC=adsync,DC=test", "ou=sales, dc=adsync,dc=test")
    assert in_subtree(SALES, SALES)
    assert not in_subtree("CN=a,OU=PreSales,DC=adsync,DC=test", SALES)  # not a suffix match
    assert normalize_dn(r"CN=Doe\, John,DC=x") == r"cn=doe\, john,dc=x"


def test_ou_rules() -> None:
    scope = ScopeConfig(include_ous=(SALES,), exclude_ous=(f"OU=Interns,{SALES}",))
    inside = AccountFacts(f"CN=a,{SALES}", frozenset())
    intern = AccountFacts(f"CN=b,OU=Interns,{SALES}", frozenset())
    outside = AccountFacts(f"CN=c,CN=Users,{BASE}", frozenset())
    assert directory_rule(scope, inside) is None
    assert directory_rule(scope, intern) == f"exclude_ous OU=Interns,{SALES}"
    assert directory_rule(scope, outside) == "not in include_ous"


def test_group_rules_by_name_or_dn() -> None:
    oim_dn = f"CN=OIM users,CN=Users,{BASE}"
    scope = ScopeConfig(include_groups=("OIM Users",), exclude_groups=(oim_dn.upper(),))
    member_by_name = AccountFacts("CN=a," + BASE, frozenset({group_key("oim users")}))
    assert directory_rule(scope, member_by_name) is None
    member_by_dn = AccountFacts("CN=a," + BASE, frozenset({group_key(oim_dn)}))
    assert directory_rule(scope, member_by_dn) == f"exclude_groups {oim_dn.upper()}"
    nobody = AccountFacts("CN=a," + BASE, frozenset())
    assert directory_rule(scope, nobody) == "not in include_groups"


def test_each_include_kind_must_match() -> None:
    scope = ScopeConfig(include_ous=(SALES,), include_groups=("OIM users",))
    in_ou_only = AccountFacts(f"CN=a,{SALES}", frozenset())
    assert directory_rule(scope, in_ou_only) == "not in include_groups"


def test_an_account_the_directory_does_not_know() -> None:
    assert directory_rule(ScopeConfig(include_groups=("g",)), None) is not None
    assert directory_rule(ScopeConfig(exclude_groups=("g",)), None) is None
