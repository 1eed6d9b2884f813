"""Which accounts' secrets are not user passwords, and case-insensitive account globs.

``krbtgt`` (the KDC's key), ``krbtgt_<n>`` (each RODC's own krbtgt) and every account
whose name ends in ``$`` (computers, inter-domain trusts, gMSA/sMSA) change their secrets
by themselves; those secrets are keys, not passwords a person typed, and must never reach
a target nor be refused by a policy. The LSA filter applies the same built-ins
(``native/lsa_filter/core/exclude.c``) plus the DC's ``ExcludeAccounts``; the daemon applies
them again for any other source.

Patterns are globs: ``*`` any run (also empty), ``?`` one character, anything else literal;
matching is case-insensitive and covers the whole name (after a ``DOMAIN\\`` prefix). Pure
functions, no I/O: the per-target scope (``adsync.directory.scope``) reuses them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final


class ExclusionKind(enum.StrEnum):
    """Why an account is excluded (a closed set: safe as a log field or metric label)."""

    KRBTGT = "krbtgt"
    RODC_KRBTGT = "rodc_krbtgt"
    MACHINE = "machine"  # ends in '$': computer, trust or managed service account
    CONFIGURED = "configured"


BUILTIN_PATTERNS: Final[tuple[tuple[str, ExclusionKind], ...]] = (
    ("krbtgt", ExclusionKind.KRBTGT),
    ("krbtgt_*", ExclusionKind.RODC_KRBTGT),
    ("*$", ExclusionKind.MACHINE),
)


def base_name(account: str) -> str:
    """The name without a ``DOMAIN\\`` prefix."""
    return account.rpartition("\\")[2]


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def glob_match(pattern: str, name: str) -> bool:
    """True when the whole of ``name`` matches ``pattern`` (case-insensitive)."""
    return _compile(pattern).fullmatch(name) is not None


def builtin(account: str) -> tuple[str, ExclusionKind] | None:
    """The built-in pattern ``account`` matches and its kind, or None (not removable)."""
    name = base_name(account)
    if not name:
        return None
    return next(((p, kind) for p, kind in BUILTIN_PATTERNS if glob_match(p, name)), None)


def exclusion(account: str, extra: Iterable[str] = ()) -> ExclusionKind | None:
    """The reason ``account`` is excluded (built-ins first, then ``extra`` patterns)."""
    found = builtin(account)
    if found is not None:
        return found[1]
    name = base_name(account)
    if name and any(glob_match(p, name) for p in extra if p):
        return ExclusionKind.CONFIGURED
    return None


def is_excluded(account: str, extra: Iterable[str] = ()) -> bool:
    return exclusion(account, extra) is not None


__all__ = [
    "BUILTIN_PATTERNS",
    "ExclusionKind",
    "base_name",
    "builtin",
    "exclusion",
    "glob_match",
    "is_excluded",
]
