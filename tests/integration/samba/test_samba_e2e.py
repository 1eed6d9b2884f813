"""Acceptance: a real Samba AD DC → hooks → the real daemon (subprocess) → a real slapd.

Each test starts slapd, the daemon (``adsync run``), and a DC copied from the
session's template whose ``check password script`` is ``adsync hook samba-check``;
``samba-tool user syncpasswords`` runs with ``adsync hook samba-sync`` as its script.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adsync.hooks.sync_state import set_baseline, state_path
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.samba_dc import SambaDC, SambaTemplate
from adsync.testing.slapd import PEOPLE, SERVICE_DN, SlapdServer, user_dn
from adsync.testing.webhook import DEFAULT_SECRET, WebhookTarget

USERS = ("alice", "bob", "carol")
WEBHOOK_ENV = "ADSYNC_SAMBA_E2E_WEBHOOK"
CHECK_DEADLINE = 3.0
SAMBA_CHECK_LIMIT = 10.0


def pw(label: str) -> str:
    """A fresh password that satisfies both ppolicy (12+) and the leak registry."""
    value = f"{label}-Pässw0rd-{os.urandom(4).hex()}"
    REGISTRY.password(value)
    return value


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def eventually(
    predicate: Callable[[], bool],
    within: float,
    what: str,
    context: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {within}s: {what}{context()}")


@dataclass
class Rig:
    dc: SambaDC
    daemon: DaemonProcess
    slapd: SlapdServer
    webhook: WebhookTarget
    state_dir: Path
    passwords: dict[str, str]

    def bound(self, user: str, password: str) -> Callable[[], bool]:
        return lambda: self.slapd.can_bind(user_dn(user), password)

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(state_path(self.state_dir).read_text())
        except FileNotFoundError:
            return {}
        return data

    def deliveries(self, account: str) -> list[Any]:
        return [d for d in self.webhook.deliveries if d.account == account]

    def failure_context(self) -> str:
        return (
            f"\n--- daemon\n{self.daemon.log_tail()}\n--- syncpasswords\n"
            f"{self.dc.sync_log_tail()}\n--- samba\n{self.dc.log_tail(15)}"
        )


@pytest.fixture
async def rig(
    tmp_path: Path, samba_template: SambaTemplate, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    monkeypatch.setenv(WEBHOOK_ENV, DEFAULT_SECRET)
    # Every part is stopped even when a later one fails to start (no stray slapd or DC).
    async with contextlib.AsyncExitStack() as stack:
        async for rig in _start_rig(tmp_path, samba_template, stack):
            yield rig


async def _start_rig(
    tmp_path: Path, samba_template: SambaTemplate, stack: contextlib.AsyncExitStack
) -> AsyncIterator[Rig]:
    slapd = SlapdServer(tmp_path / "slapd")
    stack.callback(slapd.stop)
    slapd.start()
    webhook = await stack.enter_async_context(WebhookTarget())
    work = tmp_path / "daemon"
    work.mkdir()
    backends = {
        "directory": {
            "type": "ldap",
            "url": slapd.ldaps_url,
            "bind_dn": SERVICE_DN,
            "bind_password": f"file:{slapd.service_password_file}",
            "base_dn": PEOPLE,
            "filter": "(uid={account})",
            "tls": {"ca_file": str(slapd.tls.ca_cert)},
            "timeout": "5s",
            "retry": {"backoff": {"initial": "200ms", "max": "1s", "factor": 2, "jitter": 0.1}},
        },
        "policy": {
            "type": "webhook",
            "url": webhook.url,
            "check_url": webhook.check_url,
            "secret": f"env:{WEBHOOK_ENV}",
            "timeout": "2s",
            "retry": {"backoff": {"initial": "200ms", "max": "1s", "factor": 2, "jitter": 0.1}},
        },
    }
    config = base_config(
        work,
        backends,
        precheck={"backends": ["policy"], "timeout": "1500ms", "on_undecided": "accept"},
        samba={"initial_dump": "skip", "check_deadline": f"{CHECK_DEADLINE}s"},
    )
    daemon = DaemonProcess(work, config)
    stack.push_async_callback(asyncio.to_thread, daemon.stop)
    await asyncio.to_thread(daemon.start)
    hook = f"{sys.executable} -m adsync hook samba-check --config {daemon.config_path}"
    dc = SambaDC(samba_template, check_script=hook)
    sync_script = tmp_path / "samba-sync-hook"
    sync_script.write_text(
        f"#!/bin/sh\nexec {sys.executable} -m adsync hook samba-sync"
        f" --config {daemon.config_path}\n"
    )
    sync_script.chmod(0o755)
    state_dir = Path(config["queue"]["path"]).parent
    rig = Rig(dc, daemon, slapd, webhook, state_dir, {})
    stack.push_async_callback(asyncio.to_thread, dc.destroy)
    await asyncio.to_thread(dc.start)
    for user in USERS:
        rig.passwords[user] = pw(f"{user}-0")
        await asyncio.to_thread(dc.create_user, user, rig.passwords[user])
    set_baseline(state_dir)
    await asyncio.to_thread(dc.init_syncpasswords, sync_script)
    await asyncio.to_thread(dc.start_syncpasswords)
    # The initial dump (Administrator and the three users) is skipped and counted.
    await eventually(
        lambda: rig.state().get("initial_skipped", 0) >= 1 + len(USERS),
        60,
        "initial dump skipped",
        rig.failure_context,
    )
    yield rig


async def test_initial_dump_is_skipped(rig: Rig) -> None:
    await asyncio.sleep(1.0)
    assert rig.webhook.deliveries == [], rig.failure_context()
    for user in USERS:
        assert not await asyncio.to_thread(rig.slapd.can_bind, user_dn(user), rig.passwords[user])


async def test_setpassword_kpasswd_and_ldaps_reach_slapd(rig: Rig) -> None:
    alice, bob, carol = pw("alice-1"), pw("bob-1"), pw("carol-1")
    result = await asyncio.to_thread(rig.dc.set_password, "alice", alice)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-500:]
    result = await asyncio.to_thread(rig.dc.kpasswd, "bob", rig.passwords["bob"], bob)
    assert result.returncode == 0, result.stdout.decode(errors="replace")[-500:]
    result = await asyncio.to_thread(rig.dc.ldaps_set_unicode_pwd, "carol", carol)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-500:]
    for user, password in (("alice", alice), ("bob", bob), ("carol", carol)):
        await eventually(rig.bound(user, password), 30, f"{user} bound", rig.failure_context)
        [delivery] = rig.deliveries(user)
        assert delivery.password_sha256 == sha(password)
        assert delivery.rid is not None and delivery.object_guid is not None


async def test_policy_reject_is_refused_by_the_dc_and_nothing_is_queued(rig: Rig) -> None:
    refused = pw("alice-bad")
    rig.webhook.answer_check(422, reason="on the banned list", password_sha256=sha(refused))
    result = await asyncio.to_thread(rig.dc.set_password, "alice", refused)
    assert result.returncode != 0
    result = await asyncio.to_thread(rig.dc.kpasswd, "bob", rig.passwords["bob"], refused)
    assert result.returncode != 0 and b"Password changed" not in result.stdout
    refusals = [c for c in rig.webhook.checks if c.password_sha256 == sha(refused)]
    assert len(refusals) == 2  # the DC asked (through the daemon) for both attempts
    # A later, accepted change is delivered; the refused one never was (nothing queued).
    accepted = pw("carol-ok")
    assert (await asyncio.to_thread(rig.dc.set_password, "carol", accepted)).returncode == 0
    await eventually(rig.bound("carol", accepted), 30, "carol bound", rig.failure_context)
    await eventually(lambda: len(rig.deliveries("carol")) == 1, 10, "carol delivered")
    assert rig.deliveries("alice") == [] and rig.deliveries("bob") == []
    assert not await asyncio.to_thread(rig.slapd.can_bind, user_dn("alice"), refused)


async def test_daemon_down_check_applies_on_undecided_and_change_arrives_later(rig: Rig) -> None:
    await asyncio.to_thread(rig.daemon.stop)
    during = pw("alice-during")
    started = time.monotonic()
    result = await asyncio.to_thread(rig.dc.set_password, "alice", during)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-500:]  # accept
    assert elapsed < SAMBA_CHECK_LIMIT
    await asyncio.sleep(2.0)
    assert not await asyncio.to_thread(rig.slapd.can_bind, user_dn("alice"), during)
    await asyncio.to_thread(rig.daemon.start)
    await eventually(
        rig.bound("alice", during), 40, "alice bound after restart", rig.failure_context
    )


async def test_disabling_an_account_is_not_a_second_delivery(rig: Rig) -> None:
    new = pw("bob-2")
    assert (await asyncio.to_thread(rig.dc.set_password, "bob", new)).returncode == 0
    await eventually(
        lambda: len(rig.deliveries("bob")) == 1, 30, "bob delivered", rig.failure_context
    )
    await asyncio.to_thread(rig.dc.samba_tool, "user", "disable", "bob")
    await eventually(
        lambda: "already delivered" in rig.dc.sync_log.read_text(errors="replace"),
        30,
        "disable event seen by the hook",
        rig.failure_context,
    )
    await asyncio.to_thread(rig.dc.samba_tool, "user", "enable", "bob")
    await asyncio.sleep(2.0)
    assert len(rig.deliveries("bob")) == 1
