"""Acceptance: a real Samba AD DC → hooks → the real daemon (subprocess) → a real slapd.

Each test starts slapd, the daemon (``adsync run``), and a DC copied from the
session's template whose ``check password script`` is ``adsync hook samba-check``;
``samba-tool user syncpasswords`` runs with ``adsync hook samba-sync`` as its script.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adsync.hooks.sync_state import SyncState, load_state
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.samba_dc import SambaDC, SambaTemplate
from adsync.testing.slapd import PEOPLE, SERVICE_DN, SlapdServer, user_dn
from adsync.testing.webhook import DEFAULT_SECRET, WebhookTarget

pytestmark = pytest.mark.slow

USERS = ("alice", "bob", "carol")
LATE_USER = "dave"  # created after `--cache-ldb-initialize`, before syncpasswords first runs
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
    hooks: Path

    def bound(self, user: str, password: str) -> Callable[[], bool]:
        return lambda: self.slapd.can_bind(user_dn(user), password)

    def state(self) -> SyncState:
        return load_state(str(self.state_dir))

    def deliveries(self, account: str) -> list[Any]:
        return [d for d in self.webhook.deliveries if d.account == account]

    def failure_context(self) -> str:
        return (
            f"\n--- daemon\n{self.daemon.log_tail()}\n--- syncpasswords\n"
            f"{self.dc.sync_log_tail()}\n--- samba\n{self.dc.log_tail(15)}"
        )


def adsync_cli(dc: SambaDC, *args: str) -> str:
    """The adsync CLI as the administrator runs it (with the DC's GNUPGHOME, as root's)."""
    done = subprocess.run(
        [sys.executable, "-m", "adsync", *args],
        env=dc.env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    return output


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
    # A DC as provisioned (no 'password hash gpg key ids'), set up the documented way:
    # `adsync samba setup --apply`, then (samba running) baseline, initialise, run.
    dc = SambaDC(samba_template, gpg_key_ids=False)
    stack.push_async_callback(asyncio.to_thread, dc.destroy)
    hooks = tmp_path / "hooks"
    setup = await asyncio.to_thread(
        adsync_cli, dc, "samba", "setup", "--smb-conf", str(dc.conf),
        "--config", str(daemon.config_path), "--hook-dir", str(hooks), "--apply",
    )  # fmt: skip
    assert "# applied:" in setup, setup
    state_dir = Path(config["queue"]["path"]).parent
    rig = Rig(dc, daemon, slapd, webhook, state_dir, {}, hooks)
    await asyncio.to_thread(dc.start)
    for user in USERS:
        rig.passwords[user] = pw(f"{user}-0")
        await asyncio.to_thread(dc.create_user, user, rig.passwords[user])
    config_arg = str(daemon.config_path)
    await asyncio.to_thread(adsync_cli, dc, "samba", "baseline", "--config", config_arg)
    await asyncio.to_thread(dc.init_syncpasswords, hooks / "samba-sync-hook")
    # A user created between initialisation and the first run is a change, not the dump.
    rig.passwords[LATE_USER] = pw(f"{LATE_USER}-0")
    await asyncio.to_thread(dc.create_user, LATE_USER, rig.passwords[LATE_USER])
    await asyncio.to_thread(dc.start_syncpasswords)
    # The initial dump (Administrator and the three users) is skipped and counted.
    await eventually(
        lambda: rig.state().initial_skipped >= 1 + len(USERS),
        60,
        "initial dump skipped",
        rig.failure_context,
    )
    yield rig


async def test_setup_then_initial_dump_skipped_and_the_late_user_delivered(rig: Rig) -> None:
    # `setup --apply` found the one key in GNUPGHOME and wrote it (else no cleartext at all).
    conf = rig.dc.conf.read_text()
    assert f"password hash gpg key ids = {rig.dc.template.fingerprint}" in conf
    assert f"check password script = {rig.hooks}/samba-check-hook --config" in conf
    # The user created between initialisation and the first run is delivered, with the domain.
    await eventually(
        lambda: len(rig.deliveries(LATE_USER)) == 1, 30, "late user delivered", rig.failure_context
    )
    [late] = rig.deliveries(LATE_USER)
    assert late.password_sha256 == sha(rig.passwords[LATE_USER]) and late.domain == "ADSYNC"
    await asyncio.sleep(1.0)
    assert [d.account for d in rig.webhook.deliveries] == [LATE_USER], rig.failure_context()
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
        assert delivery.domain == "ADSYNC"  # the DC's workgroup
        [check] = [c for c in rig.webhook.checks if c.password_sha256 == sha(password)]
        assert check.account == user and check.extra["domain"] == "ADSYNC"


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


async def test_config_moved_away_follows_the_hook_line_and_loses_nothing(rig: Rig) -> None:
    config = rig.daemon.config_path
    moved = config.with_name("moved.yaml")
    config.rename(moved)
    # setup wrote --on-undecided accept (the config's precheck.on_undecided): accepted. The
    # syslog line is checked in test_hooks_cli.py (a /dev/log of its own); Samba does not log
    # a check script's stderr.
    accepted = pw("alice-nocfg")
    result = await asyncio.to_thread(rig.dc.set_password, "alice", accepted)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-500:]
    # The sync hook cannot read it either: it stops syncpasswords visibly (no DONE-EXIT).
    await eventually(
        lambda: rig.dc.sync_proc is not None and rig.dc.sync_proc.poll() is not None,
        30,
        "syncpasswords stopped",
        rig.failure_context,
    )
    # The same, with reject on the hook line: the change is refused.
    await asyncio.to_thread(rig.dc.stop)
    text = rig.dc.conf.read_text()
    assert "--on-undecided accept" in text
    rig.dc.conf.write_text(text.replace("--on-undecided accept", "--on-undecided reject"))
    await asyncio.to_thread(rig.dc.start)
    refused = pw("bob-nocfg")
    result = await asyncio.to_thread(rig.dc.set_password, "bob", refused)
    assert result.returncode != 0
    # Config back, syncpasswords restarted: the accepted change arrives; the refused never.
    moved.rename(config)
    await asyncio.to_thread(rig.dc.start_syncpasswords)
    await eventually(rig.bound("alice", accepted), 40, "alice bound", rig.failure_context)
    assert not await asyncio.to_thread(rig.slapd.can_bind, user_dn("bob"), refused)
    assert all(d.password_sha256 != sha(refused) for d in rig.webhook.deliveries)


async def test_a_frozen_daemon_costs_one_deadline_then_changes_flow(rig: Rig) -> None:
    assert rig.daemon.proc is not None
    pid = rig.daemon.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        timings = []
        for n in range(3):
            started = time.monotonic()
            result = await asyncio.to_thread(rig.dc.set_password, "alice", pw(f"alice-f{n}"))
            timings.append(time.monotonic() - started)
            assert result.returncode == 0, result.stderr.decode(errors="replace")[-500:]
        # The first waits the check deadline; the next ones, within the back-off, do not.
        assert timings[0] >= CHECK_DEADLINE, timings
        assert all(t < CHECK_DEADLINE for t in timings[1:]), timings
        assert (rig.state_dir / "samba-check.backoff").exists()
    finally:
        os.kill(pid, signal.SIGCONT)
    # Thawed: the held change is stored (which ends the back-off), and a new one is checked
    # by the daemon again and delivered.
    fresh = pw("bob-thawed")
    await eventually(lambda: len(rig.deliveries("alice")) >= 1, 40, "alice delivered")
    result = await asyncio.to_thread(rig.dc.set_password, "bob", fresh)
    assert result.returncode == 0
    assert [c.account for c in rig.webhook.checks if c.password_sha256 == sha(fresh)] == ["bob"]
    await eventually(rig.bound("bob", fresh), 30, "bob bound", rig.failure_context)
