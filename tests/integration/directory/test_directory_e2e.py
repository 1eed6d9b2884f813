"""Directory-aware delivery on a real Samba AD DC, through the real daemon to webhook targets.

The daemon (``adsync run``, a subprocess) reads the DC's directory over its
privileged ldapi socket; sources are played by the ingest client, sending the
frames the DLL and the Samba hook send. Rows are read with ``adsync queue list``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adsync.ingest.client import IngestClient
from adsync.plugin import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.samba_dc import ADMIN_PASSWORD, SambaDC, SambaTemplate, base_dn
from adsync.testing.webhook import DEFAULT_SECRET, WebhookTarget

pytestmark = pytest.mark.slow
WEBHOOK_ENV = "ADSYNC_DIRECTORY_E2E_WEBHOOK"

BASE = base_dn()
SALES = f"OU=Sales,{BASE}"
FAST_RETRY = {"backoff": {"initial": "200ms", "max": "1s", "factor": 2, "jitter": 0.1}}


def pw(label: str) -> str:
    value = f"{label}-Pässw0rd-{os.urandom(4).hex()}"
    REGISTRY.password(value)
    return value


def populate(dc: SambaDC) -> None:
    """OU=Sales; "OIM users" ⊃ "OIM team" ⊃ alice (nested); "No sync" ⊃ carol.

    alice and carol live in OU=Sales, bob and svc-backup in CN=Users.
    """
    dc.samba_tool("ou", "create", SALES)
    dc.samba_tool("user", "create", "alice", pw("alice"), "--userou=OU=Sales")
    dc.samba_tool("user", "create", "carol", pw("carol"), "--userou=OU=Sales")
    for name in ("bob", "svc-backup", "dave", "erin"):
        dc.samba_tool("user", "create", name, pw(name))
    for group in ("OIM users", "OIM team", "No sync"):
        dc.samba_tool("group", "add", group)
    dc.samba_tool("group", "addmembers", "OIM team", "alice")
    dc.samba_tool("group", "addmembers", "OIM users", "OIM team")
    dc.samba_tool("group", "addmembers", "No sync", "carol")


def directory_section(dc: SambaDC, workdir: Path, **extra: Any) -> dict[str, Any]:
    secret = workdir / "directory.secret"
    secret.write_text(ADMIN_PASSWORD)
    secret.chmod(0o600)
    return {
        "url": f"ldapi://{dc.target}/private/ldap_priv/ldapi",
        "auth": "simple",
        "bind_dn": f"CN=Administrator,CN=Users,{BASE}",
        "bind_password": f"file:{secret}",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_daemon(
    workdir: Path, backends: dict[str, Any], directory: dict[str, Any] | None
) -> DaemonProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    sections: dict[str, Any] = {"metrics": {"listen": f"127.0.0.1:{free_port()}"}}
    if directory is not None:
        sections["directory"] = directory
    return DaemonProcess(workdir, base_config(workdir, backends, **sections))


def send(daemon: DaemonProcess, account: str, password: str, *, ack_status: int = 0) -> bytes:
    """A CHANGE as a source sends it (the DLL's frame), ACK 0 expected (1: refused)."""
    event_id = uuid.uuid4().bytes
    with IngestClient.unix(daemon.unix_socket, timeout=10.0) as client:
        ack = client.change(
            account=account,
            password=Secret(password),
            changed_at_ms=int(time.time() * 1000),
            event_id=event_id,
        )
    assert ack.status == ack_status, ack
    return event_id


BUILTINS = ("krbtgt", "krbtgt_1234", "WS01$")


def send_builtins(daemon: DaemonProcess) -> None:
    """The built-in exclusions never enter the queue: refused at the door (ACK 1,
    ``adsync.ingest.exclusion``); the gate's own built-in rule covers rows queued
    before that (tests/unit/dispatch/test_scope_lane.py)."""
    for account in BUILTINS:
        send(daemon, account, pw(account), ack_status=1)


def cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adsync", *args, "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """Every delivery row (``adsync queue list --json``): backend, account, state, reason."""
    result = cli(daemon, "queue", "list", "--json", "--limit", "1000")
    assert result.returncode == 0, result.stderr
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def row(daemon: DaemonProcess, backend: str, account: str) -> dict[str, Any] | None:
    found = [r for r in rows(daemon) if r["backend"] == backend and r["account"] == account]
    return found[0] if found else None


async def eventually(
    predicate: Callable[[], bool], within: float, what: str, context: Callable[[], str]
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {within}s: {what}\n{context()}")


# --- the rig ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def populated_dc(samba_template: SambaTemplate) -> Iterator[SambaDC]:
    """One DC for the module's tests (populating costs ~10 s); each test has its own daemon."""
    dc = SambaDC(samba_template)
    try:
        dc.start()
        populate(dc)
        yield dc
    finally:
        dc.destroy()


@pytest.fixture
async def targets() -> AsyncIterator[dict[str, WebhookTarget]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(WebhookTarget())
            for name in ("oim", "sales", "hr")
        }


def webhook(target: WebhookTarget, scope: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "webhook",
        "url": target.url,
        "secret": f"env:{WEBHOOK_ENV}",
        "timeout": "2s",
        "retry": FAST_RETRY,
        "scope": scope,
    }


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, DEFAULT_SECRET)


def accounts_of(target: WebhookTarget) -> set[str]:
    return {d.account for d in target.deliveries}


# --- scope --------------------------------------------------------------------------------


async def test_scope_by_nested_group_ou_and_glob_through_the_daemon(
    populated_dc: SambaDC,
    targets: dict[str, WebhookTarget],
    tmp_path: Path,
    secret_env: None,
) -> None:
    backends = {
        # "only the OIM users group to OIM": alice is in it through "OIM team" (nested).
        "oim": webhook(targets["oim"], {"include_groups": ["OIM users"]}),
        # Sales OU, but not the "No sync" group (by DN): carol is in both.
        "sales": webhook(
            targets["sales"],
            {"include_ous": [SALES], "exclude_groups": [f"CN=No sync,CN=Users,{BASE}"]},
        ),
        # Everyone but service accounts (glob, case-insensitive).
        "hr": webhook(targets["hr"], {"exclude_accounts": ["SVC-*"]}),
    }
    daemon = make_daemon(tmp_path / "d", backends, directory_section(populated_dc, tmp_path))
    try:
        await asyncio.to_thread(daemon.start)
        sent = ("alice", "bob", "carol", "svc-backup")
        for account in sent:
            await asyncio.to_thread(send, daemon, account, pw(account))
        await asyncio.to_thread(send_builtins, daemon)

        def settled() -> bool:
            return len(rows(daemon)) == 3 * len(sent) and all(
                r["state"] in ("delivered", "skipped") for r in rows(daemon)
            )

        await eventually(settled, 60, "every delivery delivered or skipped", daemon.log_tail)
        table = {(r["backend"], r["account"]): r for r in rows(daemon)}

        def outcome(backend: str, account: str) -> tuple[str, str]:
            r = table[(backend, account)]
            return r["state"], r["last_error"] or ""

        assert accounts_of(targets["oim"]) == {"alice"}
        assert outcome("oim", "bob") == ("skipped", "not in include_groups")
        assert outcome("oim", "carol") == ("skipped", "not in include_groups")
        assert accounts_of(targets["sales"]) == {"alice"}
        assert outcome("sales", "carol")[1].startswith("exclude_groups CN=No sync")
        assert outcome("sales", "bob") == ("skipped", "not in include_ous")
        assert accounts_of(targets["hr"]) == {"alice", "bob", "carol"}
        assert outcome("hr", "svc-backup") == ("skipped", "exclude_accounts SVC-*")
        assert not any(account in BUILTINS for _, account in table)  # never queued
        # Counted per backend in the metrics, never as an error in status.
        metrics = await fetch(daemon, "/metrics")
        assert 'adsync_deliveries_total{backend="oim",outcome="skipped"} 3.0' in metrics
        assert 'adsync_deliveries_total{backend="hr",outcome="skipped"} 1.0' in metrics
        assert 'adsync_changes_excluded_total{transport="unix"} 3.0' in metrics
        status = json.loads(await fetch(daemon, "/status"))
        by_name = {b["name"]: b for b in status["backends"]}
        assert by_name["oim"]["counts"]["skipped"] == 3
        assert by_name["oim"]["last_error"] is None
        assert status["directory"]["errors"] == 0 and status["directory"]["searches"] > 0
    finally:
        await asyncio.to_thread(daemon.stop)


async def test_builtin_exclusions_and_globs_without_a_directory(
    targets: dict[str, WebhookTarget], tmp_path: Path, secret_env: None
) -> None:
    backends = {"hr": webhook(targets["hr"], {"include_accounts": ["a*", "b?b"]})}
    daemon = make_daemon(tmp_path / "d", backends, None)
    try:
        await asyncio.to_thread(daemon.start)
        for account in ("Alice", "bob", "carol"):
            await asyncio.to_thread(send, daemon, account, pw(account))
        await asyncio.to_thread(send_builtins, daemon)
        await eventually(
            lambda: len(rows(daemon)) == 3 and all(r["state"] != "pending" for r in rows(daemon)),
            30, "settled", daemon.log_tail,
        )  # fmt: skip
        assert accounts_of(targets["hr"]) == {"Alice", "bob"}
        table = {r["account"]: (r["state"], r["last_error"]) for r in rows(daemon)}
        assert table["carol"] == ("skipped", "not in include_accounts")
    finally:
        await asyncio.to_thread(daemon.stop)


async def test_directory_down_is_unreachable_then_delivered_when_it_returns(
    samba_dc: SambaDC, targets: dict[str, WebhookTarget], tmp_path: Path, secret_env: None
) -> None:
    samba_dc.samba_tool("group", "add", "OIM users")
    samba_dc.samba_tool("group", "addmembers", "OIM users", "Administrator")
    backends = {"oim": webhook(targets["oim"], {"include_groups": ["OIM users"]})}
    directory = directory_section(samba_dc, tmp_path, budget="1s")
    daemon = make_daemon(tmp_path / "d", backends, directory)
    try:
        await asyncio.to_thread(daemon.start)
        await asyncio.to_thread(samba_dc.stop)
        await asyncio.to_thread(send, daemon, "Administrator", pw("admin"))

        def unreachable() -> bool:
            r = row(daemon, "oim", "Administrator")
            return r is not None and r["attempts"] >= 2 and r["last_outcome"] == "unreachable"

        await eventually(unreachable, 30, "retried as unreachable", daemon.log_tail)
        r = row(daemon, "oim", "Administrator")
        assert r is not None and r["state"] == "pending"
        assert r["last_error"].startswith("directory: ")
        assert targets["oim"].deliveries == []  # never sent, never skipped
        status = json.loads(await fetch(daemon, "/status"))
        assert status["directory"]["errors"] >= 1 and status["directory"]["last_error"]
        assert "adsync_directory_up 0.0" in await fetch(daemon, "/metrics")
        await asyncio.to_thread(samba_dc.start)
        await eventually(
            lambda: accounts_of(targets["oim"]) == {"Administrator"}, 60,
            "delivered once the directory answers", daemon.log_tail,
        )  # fmt: skip
        r = row(daemon, "oim", "Administrator")
        assert r is not None and r["state"] == "delivered"
        assert "adsync_directory_up 1.0" in await fetch(daemon, "/metrics")
    finally:
        await asyncio.to_thread(daemon.stop)


# --- the stale-password guard ----------------------------------------------------------


async def test_a_queued_password_is_superseded_by_a_newer_one_the_directory_shows(
    populated_dc: SambaDC, targets: dict[str, WebhookTarget], tmp_path: Path, secret_env: None
) -> None:
    """A change waits (target down); a newer password reaches the directory without passing
    through this daemon (as one set on another DC replicates in): the old one is never sent.

    One DC stands in for the replication here: the newer write is made with samba-tool and
    no CHANGE is sent. The two-DC rig (docs/samba.md) is the full scenario.
    """
    target = targets["hr"]
    daemon = make_daemon(
        tmp_path / "d",
        {"hr": webhook(target, {})},
        directory_section(populated_dc, tmp_path, cache_ttl="200ms"),
    )
    try:
        await asyncio.to_thread(daemon.start)
        target.respond(503)  # the target is down
        old = pw("bob-old")
        result = await asyncio.to_thread(populated_dc.set_password, "bob", old)
        assert result.returncode == 0, result.stderr
        await asyncio.to_thread(send, daemon, "bob", old)

        def retried() -> bool:
            r = row(daemon, "hr", "bob")
            return r is not None and r["attempts"] >= 1 and r["last_outcome"] == "unreachable"

        await eventually(retried, 30, "the first attempt failed (target down)", daemon.log_tail)
        newer = pw("bob-newer")
        result = await asyncio.to_thread(populated_dc.set_password, "bob", newer)
        assert result.returncode == 0, result.stderr
        target.clear_responses()  # the target is back

        def superseded() -> bool:
            r = row(daemon, "hr", "bob")
            return r is not None and r["state"] == "superseded"

        await eventually(superseded, 30, "the old password superseded", daemon.log_tail)
        r = row(daemon, "hr", "bob")
        assert r is not None
        assert r["last_error"].startswith("newer password set on this DC (password version ")
        assert target.deliveries == []  # the old password never reached the target
    finally:
        await asyncio.to_thread(daemon.stop)


# --- the audit ----------------------------------------------------------------------------


async def test_audit_reports_uncaptured_changes_only(
    populated_dc: SambaDC, targets: dict[str, WebhookTarget], tmp_path: Path, secret_env: None
) -> None:
    backends = {"hr": webhook(targets["hr"], {})}
    daemon = make_daemon(tmp_path / "d", backends, directory_section(populated_dc, tmp_path))
    try:
        await asyncio.to_thread(daemon.start)
        await asyncio.sleep(1.1)  # the metadata's change times have whole seconds
        window_start = time.time()
        # erin: set on this DC and captured (the source sends the CHANGE, as the hook does).
        erin = pw("erin-2")
        result = await asyncio.to_thread(populated_dc.set_password, "erin", erin)
        assert result.returncode == 0, result.stderr
        await asyncio.to_thread(send, daemon, "erin", erin)
        await eventually(
            lambda: accounts_of(targets["hr"]) == {"erin"}, 30, "erin", daemon.log_tail
        )
        since = f"{int(time.time() - window_start) + 2}s"
        clean = await asyncio.to_thread(cli, daemon, "audit", "--since", since, "--json")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert json.loads(clean.stdout)["gaps"] == []
        # dave: set on this DC while nothing captured it (the hook disabled).
        result = await asyncio.to_thread(populated_dc.set_password, "dave", pw("dave-2"))
        assert result.returncode == 0, result.stderr
        since = f"{int(time.time() - window_start) + 2}s"
        found = await asyncio.to_thread(cli, daemon, "audit", "--since", since)
        assert found.returncode == 1, found.stdout + found.stderr
        assert "NOT CAPTURED  dave  " in found.stdout
        assert "erin" not in found.stdout
        assert "1 uncaptured password change on this DC" in found.stdout
        metrics = await fetch(daemon, "/metrics")
        assert "adsync_audit_gaps 1.0" in metrics
        status = json.loads(await fetch(daemon, "/status"))
        assert status["audit"]["gaps"] == 1 and status["audit"]["error"] is None
        shown = await asyncio.to_thread(cli, daemon, "status")
        assert "ago: 1 uncaptured password change\n" in shown.stdout, shown.stdout + shown.stderr
        assert "last audit" in shown.stdout
    finally:
        await asyncio.to_thread(daemon.stop)


async def fetch(daemon: DaemonProcess, path: str) -> str:
    listen = daemon.config["metrics"]["listen"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{listen}{path}") as response:
            return await response.text()
