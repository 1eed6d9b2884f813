"""LDAP result codes → delivery outcomes (pure: no I/O, testable without a server)."""

from __future__ import annotations

import enum

from adsync.plugin import Outcome


class Phase(enum.Enum):
    """Where in a delivery the error happened: the same code can mean different things."""

    BIND = "bind"
    SEARCH = "search"
    MODIFY = "modify"


# RFC 4511 result codes, plus libldap's negative client-side codes as bonsai reports them.
RESULT_NAMES: dict[int, str] = {
    1: "operationsError",
    2: "protocolError",
    3: "timeLimitExceeded",
    11: "adminLimitExceeded",
    19: "constraintViolation",
    21: "invalidAttributeSyntax",
    32: "noSuchObject",
    34: "invalidDNSyntax",
    48: "inappropriateAuthentication",
    49: "invalidCredentials",
    50: "insufficientAccessRights",
    51: "busy",
    52: "unavailable",
    53: "unwillingToPerform",
    80: "other",
    81: "serverDown",
    85: "timeout",
    -1: "serverDown",
    -5: "timeout",
    -11: "connectError",
    -101: "connectionClosed",
}

UNREACHABLE_CODES = frozenset({3, 51, 52, 81, 85, -1, -5, -11, -101})
POLICY_CODES = frozenset({19, 21})
# bonsai's password-policy errors (ppolicy response control), negative by bonsai's convention.
PPOLICY_REJECT_CODES = frozenset({-203, -204, -205, -206, -207, -208})


def describe(code: int, diagnostic: str) -> str:
    name = RESULT_NAMES.get(code, "error")
    text = f"LDAP {name} ({code})"
    diagnostic = diagnostic.strip()
    return f"{text}: {diagnostic}" if diagnostic else text


def classify(code: int, diagnostic: str, phase: Phase) -> Outcome:
    """Map one LDAP error to an outcome; ``diagnostic`` must already be scrubbed."""
    reason = describe(code, diagnostic)
    if code in UNREACHABLE_CODES:
        return Outcome.unreachable(reason)
    if phase is Phase.MODIFY and (code in POLICY_CODES or code in PPOLICY_REJECT_CODES):
        return Outcome.rejected(reason)
    if phase is Phase.MODIFY and code == 32:
        return Outcome.unknown_user(f"entry vanished before the password was set: {reason}")
    if phase is Phase.BIND and code == 49:
        return Outcome.failed(f"the bind DN or its password was refused: {reason}")
    if phase is Phase.SEARCH and code == 32:
        return Outcome.failed(f"base_dn does not exist: {reason}")
    return Outcome.failed(reason)
