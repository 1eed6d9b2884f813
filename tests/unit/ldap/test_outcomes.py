from __future__ import annotations

import pytest

from adsync.backends.ldap.outcomes import Phase, classify
from adsync.plugin import OutcomeKind


@pytest.mark.parametrize(
    ("code", "phase", "kind"),
    [
        (19, Phase.MODIFY, OutcomeKind.REJECTED),  # constraintViolation (ppolicy)
        (-206, Phase.MODIFY, OutcomeKind.REJECTED),  # bonsai PasswordTooShort
        (32, Phase.MODIFY, OutcomeKind.UNKNOWN_USER),
        (32, Phase.SEARCH, OutcomeKind.FAILED),
        (49, Phase.BIND, OutcomeKind.FAILED),
        (50, Phase.MODIFY, OutcomeKind.FAILED),
        (53, Phase.MODIFY, OutcomeKind.FAILED),
        (-1, Phase.BIND, OutcomeKind.UNREACHABLE),
        (-5, Phase.SEARCH, OutcomeKind.UNREACHABLE),
        (51, Phase.MODIFY, OutcomeKind.UNREACHABLE),
        (52, Phase.BIND, OutcomeKind.UNREACHABLE),
        (81, Phase.MODIFY, OutcomeKind.UNREACHABLE),
        (999, Phase.MODIFY, OutcomeKind.FAILED),
    ],
)
def test_classify(code: int, phase: Phase, kind: OutcomeKind) -> None:
    assert classify(code, "diag", phase).kind is kind


def test_reason_names_the_code() -> None:
    outcome = classify(19, "Password fails quality checking policy", Phase.MODIFY)
    assert outcome.reason == "LDAP constraintViolation (19): Password fails quality checking policy"
