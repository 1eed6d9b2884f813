"""Issue 11 acceptance: the real daemon against the strict SPML-DSML fake.

Search + setPassword delivered; not found: unknown_user; a policy refusal: rejected with
OIM's message; pending: polled with statusRequest (or retried with the reason shown); a
MustUnderstand or authentication fault: failed at once with a configuration reason, and
``adsync status`` shows the backend misconfigured.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from adsync.queue.models import DeliveryState

from .conftest import Kit, StartDaemon, new_password, retry

pytestmark = pytest.mark.slow

DELIVERED = DeliveryState.DELIVERED
FAILED = DeliveryState.FAILED
PENDING = DeliveryState.PENDING


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_search_and_set_password_deliver_known_users(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice", "bob"]))
    rig = await start_daemon({"oim": kit.backend(fake)})
    first, second = new_password(), new_password()
    event_a, at_a = await rig.send("alice", first)
    event_b, at_b = await rig.send("bob", second)
    for account in ("alice", "bob"):
        row = await rig.wait_row("oim", account, lambda r: r.state is DELIVERED, "delivered")
        assert (row.attempts, row.last_outcome) == (1, "delivered")
    kit.assert_request(fake, "alice", first, event_a, at_a)
    kit.assert_request(fake, "bob", second, event_b, at_b)


async def test_unknown_user_is_unknown_user(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice"]))
    rig = await start_daemon({"oim": kit.backend(fake)})
    await rig.send("mallory", new_password())
    row = await rig.wait_row("oim", "mallory", lambda r: r.attempts >= 1, "attempted")
    assert row.last_outcome == "unknown_user" and row.state is PENDING
    assert row.last_error is not None and "does not exist in OIM" in row.last_error
    assert not kit.password_requests(fake)  # no setPassword for a user OIM does not have


async def test_policy_failure_is_rejected_with_oims_message(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice"]))
    fake.reject("Password must contain at least 2 digits")
    rig = await start_daemon({"oim": kit.backend(fake, retry=retry(max_rejections=0))})
    await rig.send("alice", new_password())
    row = await rig.wait_row("oim", "alice", lambda r: r.state is FAILED, "failed")
    assert (row.last_outcome, row.rejections) == ("rejected", 1)
    assert row.last_error is not None
    assert "Password must contain at least 2 digits" in row.last_error


async def test_pending_is_polled_until_done(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice"]))
    fake.pending(polls=2)
    rig = await start_daemon({"oim": kit.backend(fake, pending_poll="50ms")})
    pw = new_password()
    await rig.send("alice", pw)
    row = await rig.wait_row("oim", "alice", lambda r: r.state is DELIVERED, "delivered")
    assert row.attempts == 1
    assert [r.operation for r in fake.received] == [
        "search", "setPassword", "status", "status", "status",
    ]  # fmt: skip
    assert not fake.invalid, [r.problem for r in fake.invalid]


async def test_pending_that_never_finishes_is_retried_with_the_reason(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice"]))
    fake.pending(polls=None)
    rig = await start_daemon({"oim": kit.backend(fake, pending_poll="200ms", timeout="1s")})
    await rig.send("alice", new_password())
    row = await rig.wait_row("oim", "alice", lambda r: r.attempts >= 2, "retried")
    assert row.state is PENDING and row.last_outcome == "unreachable"
    assert row.last_error is not None and "pending" in row.last_error


async def test_must_understand_and_auth_faults_fail_as_configuration_problems(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """A wsse:Security header with mustUnderstand="1" (the old default) and wrong OIMUser
    credentials: failed at once, the reason says what to check, ``adsync status`` shows
    the backend misconfigured; the healthy backend beside them is not."""
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice"]))
    wrong = await fakes(kit.fake(["alice"]))
    wrong.password = "not-the-configured-one"
    port = free_port()
    rig = await start_daemon(
        {
            "wss": kit.backend(fake, auth="wss_username_token"),
            "badauth": kit.backend(wrong),
            "good": kit.backend(fake),
        },
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    await rig.send("alice", new_password())
    wss = await rig.wait_row("wss", "alice", lambda r: r.state is FAILED, "failed")
    assert (wss.attempts, wss.last_outcome) == (1, "failed")
    assert wss.last_error is not None and "MustUnderstand" in wss.last_error
    bad = await rig.wait_row("badauth", "alice", lambda r: r.state is FAILED, "failed")
    assert bad.attempts == 1
    assert bad.last_error is not None and "check username/password" in bad.last_error
    await rig.wait_row("good", "alice", lambda r: r.state is DELIVERED, "delivered")

    code, out = await rig.cli("status", "--json")
    assert code == 0, out
    rows = {b["name"]: b for b in json.loads(out)["backends"]}
    assert "MustUnderstand" in rows["wss"]["misconfigured"]["reason"]
    assert "check username/password" in rows["badauth"]["misconfigured"]["reason"]
    assert rows["good"]["misconfigured"] is None
    code, table = await rig.cli("status")
    assert code == 0
    assert "wss is misconfigured" in table.decode() and "good is misconfigured" not in (
        table.decode()
    )


async def test_check_config_accepts_oim_attribute_names(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits["oim_spml"]
    fake = await fakes(kit.fake(["alice"]))
    rig = await start_daemon({"oim": kit.backend(fake, match_attribute="Users.User ID")})
    code, out = await rig.cli("check-config")
    assert code == 0, out.decode(errors="replace")
