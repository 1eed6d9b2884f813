"""The Samba hooks as Samba runs them (the hook scripts setup writes, and the CLI) against
a real ingest server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adsync.hooks.install import hook_script
from adsync.hooks.samba_event import event_id
from adsync.hooks.sync_state import load_state, set_baseline
from adsync.ingest.handler import Ack, AckStatus, Peer
from adsync.ingest.server import IngestServer
from adsync.plugin import Candidate, Change, CheckResult
from adsync.testing.leaks import REGISTRY

GUID = "abf599a2-49c1-4d58-afa1-7cf29a54d1a7"
PASSWORD = "Pässwörd€1-hook"
REGISTRY.password(PASSWORD)


def sha(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass
class Recorder:
    changes: list[Change] = field(default_factory=list)
    checks: list[Candidate] = field(default_factory=list)
    ack: Ack = field(default_factory=lambda: Ack(AckStatus.STORED))
    verdict: CheckResult = field(default_factory=CheckResult.accept)
    delay: float = 0.0
    seen: set[bytes] = field(default_factory=set)

    async def store_changes(self, changes: Sequence[Change], peer: Peer) -> list[Ack]:
        for change in changes:
            if self.ack.status is AckStatus.STORED and change.event_id not in self.seen:
                self.seen.add(change.event_id)
                self.changes.append(change)
        return [self.ack] * len(changes)

    async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
        self.checks.append(candidate)
        await asyncio.sleep(self.delay)
        return self.verdict


@dataclass
class Env:
    tmp: Path
    config: Path
    socket: Path
    recorder: Recorder
    server: IngestServer | None = None

    async def start(self) -> None:
        self.server = IngestServer(self.recorder, unix_path=self.socket, allowed_uids={os.getuid()})
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def run(
        self, command: str, stdin: bytes, env: dict[str, str] | None = None, *args: str
    ) -> tuple[int, str, float]:
        """Run the hook script setup writes (``--via-cli``: ``adsync hook …`` instead)."""
        if args[:1] == ("--via-cli",):
            argv = [sys.executable, "-m", "adsync", "hook", command]
            args = args[1:]
        else:
            script = self.tmp / f"{command}-hook"
            if not script.exists():
                script.write_text(hook_script(command, []))
                script.chmod(0o755)
            argv = [str(script)]
        loop = asyncio.get_running_loop()
        start = loop.time()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            "--config",
            str(self.config),
            "--domain",
            "ADSYNC",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,  # as syncpasswords reads it
            env={**os.environ, **(env or {})},
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
        text = out.decode()
        assert PASSWORD not in text
        return proc.returncode or 0, text, loop.time() - start


@pytest.fixture
async def hook_env(tmp_path: Path) -> AsyncIterator[Env]:
    sock = tmp_path / "filter.sock"
    config = tmp_path / "adsync.yaml"
    config.write_text(
        f"ingest:\n  unix_socket: {sock}\nqueue:\n  path: {tmp_path}/state/queue.db\n"
        "precheck:\n  on_undecided: reject\nsamba:\n  check_deadline: 1500ms\n"
    )
    env = Env(tmp_path, config, sock, Recorder())
    await env.start()
    yield env
    await env.stop()


def ldif(kvno: int = 4, pwd_last_set: int = 0, **extra: str) -> bytes:
    lines = [
        "dn: CN=alice,CN=Users,DC=adsync,DC=test",
        f"objectGUID: {GUID}",
        "objectSid: S-1-5-21-1-2-3-1102",
        "sAMAccountName: alice",
        "userAccountControl: 512",
        f"pwdLastSet: {pwd_last_set}",
        f"msDS-KeyVersionNumber: {kvno}",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    lines += [f"virtualClearTextUTF8:: {encoded[:10]}", f" {encoded[10:]}"]
    return ("\n".join(lines) + "\n").encode()


CPS = {"SAMBA_CPS_ACCOUNT_NAME": "alice", "SAMBA_CPS_FULL_NAME": "Alice A"}


async def test_check_accept(hook_env: Env) -> None:
    code, out, _ = await hook_env.run("samba-check", PASSWORD.encode(), CPS)
    assert code == 0, out
    [candidate] = hook_env.recorder.checks
    assert candidate.account == "alice" and candidate.full_name == "Alice A"
    assert candidate.domain == "ADSYNC" and not candidate.set_operation
    assert sha(candidate.password.reveal()) == sha(PASSWORD)


async def test_check_through_the_cli_is_the_same_hook(hook_env: Env) -> None:
    code, out, _ = await hook_env.run("samba-check", PASSWORD.encode(), CPS, "--via-cli")
    assert code == 0 and "accepted" in out
    assert [c.domain for c in hook_env.recorder.checks] == ["ADSYNC"]


async def test_check_reject_passes_the_reason(hook_env: Env) -> None:
    hook_env.recorder.verdict = CheckResult.reject("too similar to the old one")
    code, out, _ = await hook_env.run("samba-check", PASSWORD.encode(), CPS)
    assert code == 1
    assert "too similar" in out


@pytest.mark.parametrize(("on_undecided", "expected"), [("accept", 0), ("reject", 1)])
async def test_check_daemon_down_applies_on_undecided(
    hook_env: Env, on_undecided: str, expected: int
) -> None:
    await hook_env.stop()
    text = hook_env.config.read_text().replace(
        "on_undecided: reject", f"on_undecided: {on_undecided}"
    )
    hook_env.config.write_text(text)
    code, out, _ = await hook_env.run("samba-check", PASSWORD.encode(), CPS)
    assert code == expected, out
    assert "undecided" in out


@pytest.mark.slow
async def test_check_slow_daemon_is_cut_at_the_deadline(hook_env: Env) -> None:
    hook_env.recorder.delay = 5.0  # longer than samba.check_deadline (1.5 s)
    code, out, elapsed = await hook_env.run("samba-check", PASSWORD.encode(), CPS)
    assert code == 1 and "undecided" in out  # on_undecided: reject
    assert elapsed < 4.5  # well before the daemon would have answered (5 s)


async def test_check_without_account_is_refused(hook_env: Env) -> None:
    code, out, _ = await hook_env.run(
        "samba-check", PASSWORD.encode(), {"SAMBA_CPS_ACCOUNT_NAME": ""}
    )
    assert code == 1 and "SAMBA_CPS_ACCOUNT_NAME" in out
    assert hook_env.recorder.checks == []


async def test_sync_sends_change_and_prints_done_exit(hook_env: Env) -> None:
    set_baseline(str(hook_env.tmp / "state"), now_ms=0)
    code, out, _ = await hook_env.run("samba-sync", ldif())
    assert code == 0 and out.startswith("DONE-EXIT: stored alice key version 4"), out
    [change] = hook_env.recorder.changes
    assert change.account == "alice" and change.rid == 1102
    assert change.object_guid == uuid.UUID(GUID) and change.domain == "ADSYNC"
    assert change.event_id == event_id(GUID, 4)
    assert sha(change.password.reveal()) == sha(PASSWORD)


async def test_sync_repeat_with_same_key_version_is_not_sent(hook_env: Env) -> None:
    set_baseline(str(hook_env.tmp / "state"), now_ms=0)
    assert (await hook_env.run("samba-sync", ldif()))[0] == 0
    code, out, _ = await hook_env.run("samba-sync", ldif(userAccountControl="514"))
    assert code == 0 and out.startswith("DONE-EXIT: skipped") and "already delivered" in out
    code, out, _ = await hook_env.run("samba-sync", ldif(kvno=5))
    assert out.startswith("DONE-EXIT: stored alice key version 5"), out
    assert [c.event_id for c in hook_env.recorder.changes] == [
        event_id(GUID, 4),
        event_id(GUID, 5),
    ]


async def test_sync_deleted_object_is_skipped(hook_env: Env) -> None:
    code, out, _ = await hook_env.run("samba-sync", ldif(isDeleted="TRUE"))
    assert code == 0 and out.startswith("DONE-EXIT: skipped") and "deleted" in out
    assert hook_env.recorder.changes == []


async def test_sync_initial_dump_is_skipped_and_counted(hook_env: Env) -> None:
    # pwdLastSet 2023-11-14 is before the baseline (now): part of the initial dump.
    set_baseline(str(hook_env.tmp / "state"))
    old = 133_445_000_000_000_000
    for kvno in (2, 3):
        code, out, _ = await hook_env.run("samba-sync", ldif(kvno=kvno, pwd_last_set=old))
        assert code == 0 and "initial dump" in out
    assert f"({2} skipped since initialisation)" in out
    assert hook_env.recorder.changes == []
    assert load_state(str(hook_env.tmp / "state")).initial_skipped == 2


async def test_sync_initial_dump_forwarded_when_configured(hook_env: Env) -> None:
    hook_env.config.write_text(hook_env.config.read_text() + "  initial_dump: forward\n")
    set_baseline(str(hook_env.tmp / "state"))
    code, out, _ = await hook_env.run("samba-sync", ldif(pwd_last_set=133_445_000_000_000_000))
    assert code == 0 and out.startswith("DONE-EXIT: stored"), out
    assert len(hook_env.recorder.changes) == 1


async def test_sync_waits_for_the_daemon_then_delivers(hook_env: Env) -> None:
    set_baseline(str(hook_env.tmp / "state"), now_ms=0)
    await hook_env.stop()
    task = asyncio.create_task(hook_env.run("samba-sync", ldif()))
    await asyncio.sleep(1.0)
    assert not task.done()  # holding syncpasswords, not printing DONE-EXIT
    await hook_env.start()
    code, out, _ = await task
    assert code == 0 and out.startswith("DONE-EXIT: stored"), out
    assert len(hook_env.recorder.changes) == 1


async def test_sync_gives_up_after_max_wait_without_done_exit(hook_env: Env) -> None:
    set_baseline(str(hook_env.tmp / "state"), now_ms=0)
    await hook_env.stop()
    code, out, _ = await hook_env.run("samba-sync", ldif(), None, "--max-wait", "0.5")
    assert code == 75 and not out.startswith("DONE-EXIT"), out
    assert "re-deliver" in out
    await hook_env.start()
    code, out, _ = await hook_env.run("samba-sync", ldif())
    assert out.startswith("DONE-EXIT: stored"), out


async def test_sync_busy_is_retried(hook_env: Env) -> None:
    set_baseline(str(hook_env.tmp / "state"), now_ms=0)
    hook_env.recorder.ack = Ack(AckStatus.BUSY, "queue full")
    task = asyncio.create_task(hook_env.run("samba-sync", ldif()))
    await asyncio.sleep(0.8)
    assert not task.done()
    hook_env.recorder.ack = Ack(AckStatus.STORED)
    code, out, _ = await task
    assert code == 0 and out.startswith("DONE-EXIT: stored"), out


async def test_sync_malformed_ldif_stops_without_done_exit(hook_env: Env) -> None:
    code, out, _ = await hook_env.run("samba-sync", b"dn: cn=x\nobjectGUID:: ***\n")
    assert code == 65 and not out.startswith("DONE-EXIT"), out
    assert hook_env.recorder.changes == []


async def test_sync_without_a_baseline_forwards_rather_than_drops(hook_env: Env) -> None:
    old = 133_445_000_000_000_000  # would be "initial dump" against any recent baseline
    code, out, _ = await hook_env.run("samba-sync", ldif(pwd_last_set=old))
    assert code == 0 and out.startswith("DONE-EXIT: stored"), out
    assert "adsync samba baseline" in out
    assert len(hook_env.recorder.changes) == 1


async def test_sync_with_an_unreadable_config_stops_without_done_exit(hook_env: Env) -> None:
    hook_env.config.rename(hook_env.tmp / "moved.yaml")
    code, out, _ = await hook_env.run("samba-sync", ldif())
    assert code == 78 and not out.startswith("DONE-EXIT"), out
    assert "cannot read" in out and hook_env.recorder.changes == []


async def test_a_stored_change_ends_the_check_back_off(hook_env: Env) -> None:
    state = hook_env.tmp / "state"
    set_baseline(str(state), now_ms=0)
    (state / "samba-check.backoff").write_text(f"{time.time() + 30:.3f}\n")
    code, out, _ = await hook_env.run("samba-check", PASSWORD.encode(), CPS)
    assert code == 1 and "timed out recently" in out  # on_undecided: reject, daemon not asked
    assert hook_env.recorder.checks == []
    assert (await hook_env.run("samba-sync", ldif()))[0] == 0
    code, out, _ = await hook_env.run("samba-check", PASSWORD.encode(), CPS)
    assert code == 0 and len(hook_env.recorder.checks) == 1


def test_unreadable_config_is_logged_to_syslog(tmp_path: Path) -> None:
    """The check hook's loud line reaches /dev/log: the hook runs in a private mount
    namespace whose /dev is a directory holding a datagram socket the test reads."""
    dev = tmp_path / "dev"
    dev.mkdir()
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(str(dev / "log"))
    log.settimeout(20)
    script = tmp_path / "samba-check-hook"
    script.write_text(hook_script("samba-check", []))
    script.chmod(0o755)
    line = shlex.join(
        [str(script), "--config", str(tmp_path / "gone.yaml"), "--on-undecided", "accept"]
    )
    try:
        done = subprocess.run(
            [
                "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                f"mount --bind {shlex.quote(str(dev))} /dev && exec /bin/sh -c {shlex.quote(line)}",
            ],
            input=PASSWORD.encode(),
            env={"SAMBA_CPS_ACCOUNT_NAME": "alice", "PATH": os.environ["PATH"]},
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr  # accept, from the line
        record = log.recv(4096).decode()
    finally:
        log.close()
    assert record.startswith("<27>")  # facility daemon (3) * 8 + priority err (3)
    assert "adsync-samba-hook" in record and "gone.yaml" in record
    assert "cannot read" in record and PASSWORD not in record
