"""A change from ``adsync test`` and one from the wire protocol reach each target, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from adsync.queue.models import DeliveryState

from .conftest import Kit, StartDaemon, new_password

pytestmark = pytest.mark.slow


async def test_adsync_test_and_wire_changes_reach_the_target_as_its_protocol_requires(
    kit: Kit, fakes: Any, start_daemon: StartDaemon
) -> None:
    """Soffid: the eris query bytes; OIM: schema-valid SPML with WS-Security; Domino: the DRAPI
    request document (looked up by account for ``adsync test``, by objectGUID from the wire);
    SCIM: the PatchOp. Each target gets exactly one password request per change."""
    fake = await fakes(kit.fake(["alice", "bob"]))
    rig = await start_daemon({"target": kit.backend(fake)})
    via_cli, via_wire = new_password("cli"), new_password("wire")

    cli_event = await rig.adsync_test("alice", via_cli)
    wire_event, changed_at = await rig.send("bob", via_wire, object_guid=kit.wire_guid("bob"))

    for account in ("alice", "bob"):
        row = await rig.wait_row(
            "target", account, lambda r: r.state is DeliveryState.DELIVERED, f"{account} delivered"
        )
        assert (row.attempts, row.rejections, row.last_outcome) == (1, 0, "delivered")
        assert not row.password_held  # the only backend has it: the password is gone
    kit.assert_request(fake, "alice", via_cli, cli_event, None)
    kit.assert_request(fake, "bob", via_wire, wire_event, changed_at)
    assert sorted(r.password_sha256 for r in kit.password_requests(fake)) == sorted(
        [via_cli.sha, via_wire.sha]
    )
    await rig.queue_list("alice", "bob")
