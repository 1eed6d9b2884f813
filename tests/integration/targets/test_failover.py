"""Soffid sync servers and Domino Request Processors are tried in order: the first down, the
second takes the change within the same attempt."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from adsync.queue.models import DeliveryState

from .conftest import Kit, StartDaemon, new_password, retry

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target", ["soffid", "domino"])
async def test_first_server_down_delivers_through_the_second(
    target: str, kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    kit = kits[target]
    first = await fakes(kit.fake(["alice", "bob"]))
    second = await fakes(kit.fake(["alice", "bob"]))
    await first.go_down()
    rig = await start_daemon({"target": kit.backend(first, second)})
    via_cli, via_wire = new_password("cli"), new_password("wire")

    cli_event = await rig.adsync_test("alice", via_cli)
    wire_event, changed_at = await rig.send("bob", via_wire, object_guid=kit.wire_guid("bob"))

    for account in ("alice", "bob"):
        row = await rig.wait_row(
            "target", account, lambda r: r.state is DeliveryState.DELIVERED, "delivered"
        )
        assert (row.attempts, row.rejections) == (1, 0)  # failover inside one attempt
    kit.assert_request(second, "alice", via_cli, cli_event, None)
    kit.assert_request(second, "bob", via_wire, wire_event, changed_at)
    assert first.received == []


@pytest.mark.parametrize("target", ["soffid", "domino"])
async def test_first_server_hanging_leaves_the_second_time_to_take_the_change(
    target: str, kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """The first server accepts connections and never answers: it gets only its share of
    the delivery's ``timeout``, so the second still takes the change in the same attempt.
    (``timeout`` above 5s as in production: aiohttp then rounds its own deadline up, past
    the dispatcher's, so a plugin relying on the session timeout never fails over.)"""
    kit = kits[target]
    first = await fakes(kit.fake(["alice"]))
    second = await fakes(kit.fake(["alice"]))
    first.stall()
    rig = await start_daemon({"target": kit.backend(first, second, timeout="6s")})
    pw = new_password()
    await rig.send("alice", pw, object_guid=kit.wire_guid("alice"))

    row = await rig.wait_row(
        "target", "alice", lambda r: r.state is DeliveryState.DELIVERED, "delivered"
    )
    assert row.rejections == 0  # without a per-server share, every attempt would time out
    assert [r.password_sha256 for r in kit.password_requests(second, "alice")] == [pw.sha]
    assert first.arrived >= 1  # it was asked first


async def test_soffid_internal_error_on_the_first_server_hands_over_to_the_second(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """500 ``ERROR: InternalErrorException`` is the first server's trouble, not the password's."""
    kit = kits["soffid"]
    first = await fakes(kit.fake(["alice"]))
    second = await fakes(kit.fake(["alice"]))
    first.internal_error()
    rig = await start_daemon({"target": kit.backend(first, second)})
    pw = new_password()
    await rig.send("alice", pw)

    row = await rig.wait_row(
        "target", "alice", lambda r: r.state is DeliveryState.DELIVERED, "delivered"
    )
    assert (row.attempts, row.rejections) == (1, 0)
    assert [r.password_sha256 for r in kit.password_requests(second, "alice")] == [pw.sha]
    assert [r.password_sha256 for r in first.received] == [pw.sha]


async def test_soffid_persistent_internal_error_is_counted_then_failed_and_misconfigured(
    kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> None:
    """A ``500 ERROR:`` from every server (a wrong agent name answers it forever) is not
    retried silently until expire_after: counted like a rejection, failed after
    max_rejections, and ``adsync status`` shows the backend misconfigured meanwhile."""
    kit = kits["soffid"]
    fake = await fakes(kit.fake(["alice"]))
    fake.internal_error()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    rig = await start_daemon(
        {"target": kit.backend(fake, retry=retry(max_rejections=2))},
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    await rig.send("alice", new_password())
    row = await rig.wait_row("target", "alice", lambda r: r.state is DeliveryState.FAILED, "failed")
    assert (row.attempts, row.rejections, row.last_outcome) == (3, 3, "rejected")
    assert row.last_error is not None and "InternalErrorException" in row.last_error
    code, out = await rig.cli("status", "--json")
    assert code == 0
    (entry,) = json.loads(out)["backends"]
    assert "agent name" in entry["misconfigured"]["reason"]
