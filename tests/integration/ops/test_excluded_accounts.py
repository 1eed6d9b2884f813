"""The real daemon refuses a CHANGE for an account whose secret is not a user password
(krbtgt, krbtgt_*, *$), whatever the source; it stores the others, logs each excluded
account once and counts them in adsync_changes_excluded."""

from __future__ import annotations

import os
import secrets
from typing import Any

from adsync.ingest.client import IngestClient
from adsync.secret import Secret
from adsync.testing.leaks import REGISTRY

from .conftest import off_loop, pending_total, webhook
from .test_metrics_scrape import samples, value

EXCLUDED = ["HOST1$", "krbtgt_12345", "krbtgt", "CORP\\WEB01$", "host1$"]


async def test_daemon_refuses_excluded_accounts(targets: Any, make_daemon: Any) -> None:
    target = await targets()
    daemon = make_daemon(
        {"hr": webhook(target.url, check_url=target.check_url)},
        precheck={"backends": ["hr"], "timeout": "2s", "on_undecided": "accept"},
    )
    for account in ("krbtgt", "HOST1$"):
        target.answer_check(422, account=account, reason="would be refused if asked")
    password = REGISTRY.password(f"Machine-Secret-{secrets.token_urlsafe(10)}")
    await off_loop(daemon.start)

    def script() -> tuple[list[int], list[int]]:
        with IngestClient.unix(daemon.unix_socket) as client:
            acks = [
                client.change(
                    account=a,
                    password=Secret(password),
                    changed_at_ms=1_700_000_000_000,
                    event_id=os.urandom(16),
                ).status
                for a in [*EXCLUDED, "alice"]
            ]
            verdicts = [
                client.check(account=a, password=Secret(password), set_operation=True).status
                for a in ("krbtgt", "HOST1$")
            ]
        return acks, verdicts

    acks, verdicts = await off_loop(script)
    assert acks == [1] * len(EXCLUDED) + [0]
    assert verdicts == [0, 0]  # accepted without asking the backend (which would refuse)
    delivered = await target.wait_for_deliveries(1, within=20)
    assert [d.account for d in delivered] == ["alice"]
    daemon.wait_for(lambda s: pending_total(s) == 0)

    code, body = daemon.get("/metrics")
    assert code == 200
    table = samples(body.decode())
    assert value(table, "adsync_changes_excluded_total", transport="unix") == len(EXCLUDED)
    assert value(table, "adsync_changes_refused_total", transport="unix") == len(EXCLUDED)
    assert password not in body.decode()

    logged = [e for e in daemon.log_events() if e.get("event") == "ingest_change_excluded"]
    # once per account: HOST1$ and host1$ are the same account
    assert sorted(e["account"].casefold() for e in logged) == sorted(
        ["host1$", "krbtgt_12345", "krbtgt", "corp\\web01$"]
    )
    assert {e["kind"] for e in logged} == {"machine", "rodc_krbtgt", "krbtgt"}
