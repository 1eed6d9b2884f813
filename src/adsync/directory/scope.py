"""Per-backend account scope: which rule, if any, keeps a change from a backend (pure).

Evaluation order (the first match decides, exclusions before inclusions):

1. built in, not removable: ``krbtgt``, ``krbtgt_*`` (RODC krbtgt accounts) and every
   name ending in ``$`` (computer, trust and managed service accounts);
2. ``exclude_accounts``, then ``include_accounts`` (case-insensitive globs);
3. ``exclude_ous``, then ``include_ous`` (the account's DN is in the subtree);
4. ``exclude_groups``, then ``include_groups`` (nested membership, as the directory
   answers ``LDAP_MATCHING_RULE_IN_CHAIN``).

Each non-empty ``include_*`` list must match (they intersect). Steps 3-4 need the
directory's facts about the account; step 1-2 never do.
TODO(lead): merge the built-in exclusions and glob matching with ``adsync.accounts``
(the DLL issue's module) into one owner.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from adsync.plugin import ScopeConfig

BUILTIN_EXCLUSIONS = ("krbtgt", "krbtgt_*", "*$")


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the directory says about one account, as scope needs it."""

    dn: str
    groups: frozenset[str]  # group_key() of each rule group the account is a nested member of


def glob_match(account: str, pattern: str) -> bool:
    """Case-insensitive shell glob over the whole name (``*``, ``?``, ``[...]``)."""
    return fnmatch.fnmatchcase(account.casefold(), pattern.casefold())


def builtin_exclusion(account: str) -> str | None:
    """The built-in pattern ``account`` matches, or None."""
    return next((p for p in BUILTIN_EXCLUSIONS if glob_match(account, p)), None)


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
    builtin = builtin_exclusion(account)
    if builtin is not None:
        return f"built-in exclusion {builtin}"
    hit = _first(scope.exclude_accounts, lambda p: glob_match(account, p))
    if hit is not None:
        return f"exclude_accounts {hit}"
    if scope.include_accounts and not any(glob_match(account, p) for p in scope.include_accounts):
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
    "BUILTIN_EXCLUSIONS",
    "AccountFacts",
    "account_rule",
    "builtin_exclusion",
    "directory_rule",
    "glob_match",
    "group_key",
    "in_subtree",
    "is_dn",
    "normalize_dn",
    "rule_groups",
]
