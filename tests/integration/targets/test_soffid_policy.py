"""Soffid's policy check through the daemon: a CHECK frame → ``GET /propagatepass?test=true``."""

from __future__ import annotations

from typing import Any

import pytest

from adsync.plugin import Verdict
from adsync.testing.contract import sha256_hex

from .conftest import AGENT_ERIS, PREFIX, Kit, StartDaemon, new_password

pytestmark = pytest.mark.slow


def soffid_policy(account: str, password: str) -> str | None:
    """Soffid's answer for a non-compliant password: the policy's own description."""
    if account.lower() in password.lower():
        return "The password must not contain the user name"
    return None


async def test_check_rejects_a_non_compliant_password_with_soffids_reason(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["soffid"]
    fake = await fakes(kit.fake(["alice"]))
    fake.policy = soffid_policy
    rig = await start_daemon(
        {"soffid": kit.backend(fake)},
        precheck={"backends": ["soffid"], "timeout": "5s", "on_undecided": "accept"},
    )
    good, bad = new_password("good"), new_password("ALICE")

    accepted = await rig.check("alice", good)
    rejected = await rig.check("alice", bad)

    assert accepted.status == Verdict.ACCEPT
    assert rejected.status == Verdict.REJECT
    assert rejected.reason == "The password must not contain the user name"
    checks = [r for r in fake.received if r.operation == "check"]
    assert [r.password_sha256 for r in checks] == [good.sha, bad.sha]
    assert checks[0].target_sha256 == sha256_hex(
        f"/propagatepass?test=true&user=alice&password={good.eris}&domain={AGENT_ERIS}"
    )
    assert not kit.password_requests(fake), "a check must not propagate anything"


async def test_check_reason_that_echoes_the_password_is_scrubbed(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """Soffid may quote the password in its reason: the source gets the reason without it."""
    kit = kits["soffid"]
    fake = await fakes(kit.fake(["alice"]))
    fake.policy = lambda account, password: f"'{password}' is in the password history"
    rig = await start_daemon(
        {"soffid": kit.backend(fake)},
        precheck={"backends": ["soffid"], "timeout": "5s", "on_undecided": "accept"},
    )
    verdict = await rig.check("alice", new_password())  # rig.check scans the reason

    assert verdict.status == Verdict.REJECT
    assert "is in the password history" in verdict.reason
    assert PREFIX not in verdict.reason


@pytest.mark.parametrize("on_undecided", ["accept", "reject"])
async def test_slow_soffid_gives_the_on_undecided_verdict(
    on_undecided: str, kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """Soffid answers after precheck.timeout: the verdict is the operator's on_undecided.
    Soffid would reject this password: that answer must not count once the time is up."""
    kit = kits["soffid"]
    fake = await fakes(kit.fake(["alice"]))
    fake.reject("too short")
    fake.slow(2)  # answers, but well after precheck.timeout (the teardown waits for it)
    rig = await start_daemon(
        {"soffid": kit.backend(fake)},
        precheck={"backends": ["soffid"], "timeout": "300ms", "on_undecided": on_undecided},
    )
    verdict = await rig.check("alice", new_password())

    expected = Verdict.ACCEPT if on_undecided == "accept" else Verdict.REJECT
    assert verdict.status == expected
    assert "undecided" in verdict.reason and "too short" not in verdict.reason
    assert fake.arrived == 1  # it was asked, and did not answer in time


async def test_check_fails_over_from_a_hanging_sync_server_within_precheck_timeout(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """The first sync server hangs; the backend's own timeout (10s) is far longer than
    precheck.timeout (2s). The check gets only its share of what is left of the pre-check,
    so the second server's verdict still arrives in time instead of on_undecided."""
    kit = kits["soffid"]
    first = await fakes(kit.fake(["alice"]))
    second = await fakes(kit.fake(["alice"]))
    first.stall()
    second.policy = soffid_policy
    rig = await start_daemon(
        {"soffid": kit.backend(first, second, timeout="10s")},
        precheck={"backends": ["soffid"], "timeout": "2s", "on_undecided": "accept"},
    )
    verdict = await rig.check("alice", new_password("ALICE"))

    assert verdict.status == Verdict.REJECT
    assert verdict.reason == "The password must not contain the user name"
    assert first.arrived >= 1  # it was asked first
