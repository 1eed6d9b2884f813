"""Every outcome class per target, through the daemon, mapped as design.md says.

rejected: counted up to ``retry.max_rejections``, then failed; unknown user: retried
within ``unknown_user_grace``, then failed; unreachable: never counted, delivered when
the target is back; expired: failed once ``expire_after`` has passed.

The rules themselves are ``adsync.dispatch.retry``'s, proven on the fake clock in
tests/unit/dispatch; here they run on real time through the real daemon. Each target
runs the unknown-user test (its own "no such user" answer, and whether it looks the user
up before sending a password); the unreachable and expiry rules, the same for every
target, run against one.
"""

from __future__ import annotations

from typing import Any

import pytest

from adsync.queue.models import DeliveryInfo, DeliveryState

from .conftest import Kit, StartDaemon, eventually, new_password, retry

pytestmark = pytest.mark.slow

DELIVERED = DeliveryState.DELIVERED
FAILED = DeliveryState.FAILED
PENDING = DeliveryState.PENDING


@pytest.fixture(params=["oim_spml", "scim"])
def rejecting_kit(request: pytest.FixtureRequest, kits: dict[str, Kit]) -> Kit:
    return kits[request.param]


async def test_rejected_is_counted_up_to_max_rejections_then_failed(
    rejecting_kit: Kit, fakes: Any, start_daemon: StartDaemon
) -> None:
    """OIM (setPasswordResponse failure/customError) and SCIM (400 invalidValue) refuse a
    password synchronously. The target's message here even echoes the password: the
    operator sees the reason, never the password."""
    kit = rejecting_kit
    fake = await fakes(kit.fake(["alice"]))
    pw = new_password()
    fake.reject(f"password {pw.value} was used before")
    rig = await start_daemon({"target": kit.backend(fake, retry=retry(max_rejections=2))})
    await rig.send("alice", pw, object_guid=kit.wire_guid("alice"))

    row = await rig.wait_row("target", "alice", lambda r: r.state is FAILED, "failed")
    assert (row.attempts, row.rejections, row.last_outcome) == (3, 3, "rejected")
    assert row.last_error is not None
    assert "max_rejections 2" in row.last_error and "was used before" in row.last_error
    assert [r.password_sha256 for r in kit.password_requests(fake, "alice")] == [pw.sha] * 3
    await rig.queue_list("alice")


@pytest.fixture(params=["domino", "soffid"])
def non_rejecting_kit(request: pytest.FixtureRequest, kits: dict[str, Kit]) -> Kit:
    return kits[request.param]


async def test_target_without_synchronous_rejection_takes_the_change(
    non_rejecting_kit: Kit, fakes: Any, start_daemon: StartDaemon
) -> None:
    """Soffid and Domino cannot refuse a password synchronously (Soffid queues every
    propagation and shows its policy only in the check; Domino's Request Processor applies
    the request later), so "rejected" never comes from them: a target set to refuse
    still gets the change delivered at once, and nothing is counted. The policy side of
    Soffid is tested in test_soffid_policy.py."""
    kit = non_rejecting_kit
    fake = await fakes(kit.fake(["alice"]))
    fake.reject("password history")
    rig = await start_daemon({"target": kit.backend(fake, retry=retry(max_rejections=0))})
    pw = new_password()
    await rig.send("alice", pw, object_guid=kit.wire_guid("alice"))

    row = await rig.wait_row("target", "alice", lambda r: r.state is DELIVERED, "delivered")
    assert (row.attempts, row.rejections) == (1, 0)
    assert [r.password_sha256 for r in kit.password_requests(fake, "alice")] == [pw.sha]


async def test_domino_refusing_the_request_document_fails_at_once(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """Domino's only synchronous refusal is DRAPI's 4xx (here: the form is not configured
    in the request database's schema): a permanent failure, not a counted rejection."""
    kit = kits["domino"]
    fake = await fakes(kit.fake(["alice"]))
    fake.request_form = "SomethingElse"
    rig = await start_daemon({"target": kit.backend(fake)})
    await rig.send("alice", new_password(), object_guid=kit.wire_guid("alice"))

    row = await rig.wait_row("target", "alice", lambda r: r.state is FAILED, "failed")
    assert (row.attempts, row.rejections, row.last_outcome) == (1, 0, "failed")
    assert row.last_error is not None and "403" in row.last_error
    await rig.queue_list("alice")


async def test_unknown_user_is_retried_within_the_grace_then_failed(
    kit: Kit, fakes: Any, start_daemon: StartDaemon
) -> None:
    """``ghost`` never appears: retried, then failed once the grace is over. ``late`` is
    unknown at first and created within the grace: then delivered. (Soffid has no lookup
    step: its propagation request itself finds the account, so it carries the password.)"""
    fake = await fakes(kit.fake([]))
    rig = await start_daemon(
        {"target": kit.backend(fake, retry=retry(unknown_user_grace="2s", max_rejections=0))}
    )
    ghost, late = new_password("ghost"), new_password("late")
    await rig.send("ghost", ghost, object_guid=kit.wire_guid("ghost"))
    await rig.send("late", late, object_guid=kit.wire_guid("late"))

    def retried_unknown(r: DeliveryInfo) -> bool:
        return r.attempts >= 2 and r.last_outcome == "unknown_user"

    await rig.wait_row("target", "late", retried_unknown, "late retried as unknown_user")
    kit.add_user(fake, "late")
    row = await rig.wait_row("target", "late", lambda r: r.state is DELIVERED, "late delivered")
    assert row.rejections == 0
    sent = [r.password_sha256 for r in kit.password_requests(fake, "late")]
    assert sent == [late.sha] * len(sent) and sent
    if kit.lookup_first:  # the password went out once, after the user was found
        assert len(sent) == 1

    row = await rig.wait_row("target", "ghost", lambda r: r.state is FAILED, "ghost failed")
    assert row.last_outcome == "unknown_user" and row.attempts >= 2 and row.rejections == 0
    assert row.last_error is not None and "unknown_user_grace" in row.last_error
    if kit.lookup_first:  # never a password for a user the target does not have
        assert not kit.password_requests(fake, "ghost")
    await rig.queue_list("ghost", "late")


@pytest.fixture
def one_kit(kits: dict[str, Kit]) -> Kit:
    """A target for a rule that does not depend on the target (every plugin answers a
    target that is down as unreachable: the contract kit checks it per backend)."""
    return kits["scim"]


async def test_unreachable_is_not_counted_and_delivered_when_the_target_is_back(
    one_kit: Kit, fakes: Any, start_daemon: StartDaemon
) -> None:
    """With ``max_rejections: 0`` a single counted attempt would fail the delivery: several
    unreachable attempts leave it pending, and it is delivered once the target is back."""
    kit = one_kit
    fake = await fakes(kit.fake(["alice"]))
    await fake.go_down()
    rig = await start_daemon({"target": kit.backend(fake, retry=retry(max_rejections=0))})
    pw = new_password()
    await rig.send("alice", pw, object_guid=kit.wire_guid("alice"))

    def retried(r: DeliveryInfo) -> bool:
        return r.attempts >= 3 and r.last_outcome == "unreachable"

    row = await rig.wait_row("target", "alice", retried, "three unreachable attempts")
    assert row.state in (PENDING, DeliveryState.IN_FLIGHT) and row.rejections == 0
    assert row.password_held
    await fake.come_back()
    row = await rig.wait_row("target", "alice", lambda r: r.state is DELIVERED, "delivered")
    assert row.rejections == 0 and row.attempts >= 4
    assert [r.password_sha256 for r in kit.password_requests(fake, "alice")] == [pw.sha]


async def test_a_delivery_not_done_before_expire_after_is_failed_as_expired(
    one_kit: Kit, fakes: Any, start_daemon: StartDaemon
) -> None:
    """The target is down past ``expire_after``: the row fails as expired, the password is
    dropped, and the target never receives it, even when it comes back."""
    kit = one_kit
    fake = await fakes(kit.fake(["alice"]))
    await fake.go_down()
    rig = await start_daemon({"target": kit.backend(fake, retry=retry(expire_after="1s"))})
    await rig.send("alice", new_password(), object_guid=kit.wire_guid("alice"))

    row = await rig.wait_row("target", "alice", lambda r: r.state is FAILED, "expired")
    assert row.last_outcome == "expired" and row.rejections == 0
    assert not row.password_held
    await fake.come_back()

    async def still_failed() -> bool:
        again = await rig.row("target", "alice")
        return again is not None and again.state is FAILED and again.attempts == row.attempts

    await eventually(still_failed, "row stays failed")
    assert not kit.password_requests(fake)
    await rig.queue_list("alice")
