"""Per-backend account scope: which rule, if any, keeps a change from a backend (pure).

Evaluation order (the first match decides, exclusions before inclusions):

1. built in, not removable: ``krbtgt``, ``krbtgt_*`` (RODC krbtgt accounts) and every
   name ending in ``$`` (computer, trust and managed service accounts);
2. ``exclude_accounts``, then ``include_accounts`` (case-insensitive globs);
3. ``exclude_ous``, then ``include_ous`` (the account's DN is in the subtree);
4. ``exclude_groups``, then ``include_groups`` (nested membership, as the directory
   answers ``LDAP_MATCHING_RULE_IN_CHAIN``).

Each non-empty ``include_*`` list must match (they intersect). Steps 3-4 need the
directory's facts about the account; step 1-2 never do. The built-ins and the globs
are ``adsync.accounts``' (the one owner; the LSA filter has the same rules in C).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from adsync.accounts import builtin, glob_match
from adsync.plugin import ScopeConfig


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the directory says about one account, as scope needs it."""

    dn: str
    groups: frozenset[str]  # group_key() of each rule group the account is a nested member of


_RDN_SPLIT = re.compile(r"(?<!\\),")


def normalize_dn(dn: str) -> str:
    """Case-folded, spaces around RDN separators removed (``CN=A, DC=x`` == ``cn=a,dc=x``)."""
    parts = []
    for rdn in _RDN_SPLIT.split(dn.strip()):
        attr, _, value = rdn.partition("=")
        parts.append(f"{attr.strip()}={value.strip()}".casefold())
    return ",".join(parts)


def is_dn(value: str) -> bool:
    return "=" in value


def group_key(value: str) -> str:
    """How a configured group is compared: its normalized DN, or its casefolded name."""
    return normalize_dn(value) if is_dn(value) else value.casefold()


def in_subtree(dn: str, base: str) -> bool:
    dn, base = normalize_dn(dn), normalize_dn(base)
    return dn == base or dn.endswith("," + base)


def _first(patterns: Iterable[str], match: object) -> str | None:
    return next((p for p in patterns if match(p)), None)  # type: ignore[operator]


def account_rule(scope: ScopeConfig, account: str) -> str | None:
    """Why the account alone keeps the change out (steps 1-2), or None."""
    found = builtin(account)
    if found is not None:
        return f"built-in exclusion {found[0]}"
    hit = _first(scope.exclude_accounts, lambda p: glob_match(p, account))
    if hit is not None:
        return f"exclude_accounts {hit}"
    if scope.include_accounts and not any(glob_match(p, account) for p in scope.include_accounts):
        return "not in include_accounts"
    return None


def directory_rule(scope: ScopeConfig, facts: AccountFacts | None) -> str | None:
    """Why the directory's facts keep the change out (steps 3-4), or None.

    ``facts`` None: the directory has no such account; with any include rule it is
    out of scope, with exclusions only it is in (nothing excludes it).
    """
    if facts is None:
        if scope.include_ous or scope.include_groups:
            return "account not found in the directory (include rules need it)"
        return None
    hit = _first(scope.exclude_ous, lambda ou: in_subtree(facts.dn, ou))
    if hit is not None:
        return f"exclude_ous {hit}"
    if scope.include_ous and not any(in_subtree(facts.dn, ou) for ou in scope.include_ous):
        return "not in include_ous"
    hit = _first(scope.exclude_groups, lambda g: group_key(g) in facts.groups)
    if hit is not None:
        return f"exclude_groups {hit}"
    if scope.include_groups and not any(group_key(g) in facts.groups for g in scope.include_groups):
        return "not in include_groups"
    return None


def rule_groups(scope: ScopeConfig) -> tuple[str, ...]:
    """The groups whose (nested) membership this scope asks about."""
    return (*scope.include_groups, *scope.exclude_groups)


__all__ = [
    "AccountFacts",
    "account_rule",
    "directory_rule",
    "group_key",
    "in_subtree",
    "is_dn",
    "normalize_dn",
    "rule_groups",
]
