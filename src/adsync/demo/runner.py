"""The demo's moving parts: a temp dir, two fake targets, the real daemon, the wire client.

The daemon runs in this process (``adsync.daemon.Daemon``) on a config that points only
into the temp dir: Unix socket, queue, master key, webhook secret and the daemon's
JSON log. Changes go through the real wire protocol with the blocking
``IngestClient`` (in a worker thread), exactly as a filter or ``adsync test`` sends
them. The screen is fed from the daemon's own queue (``list_deliveries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from adsync.config import Config, config_from_data
from adsync.daemon import Daemon
from adsync.demo.board import Board, Row
from adsync.demo.judge import Result, judge
from adsync.demo.render import PASSWORD_NOTE, Presenter
from adsync.demo.scenarios import (
    BACKENDS,
    DELIVERED,
    DEMO_PASSWORDS,
    DOMAIN,
    KNOWN_ACCOUNTS,
    OUTAGE,
    OUTAGE_ATTEMPTS,
    POLICY,
    POLICY_REASON,
    RETRY,
    SOFFID,
    SOFFID_AGENT,
    SOURCE_HOST,
    TARGET_LATENCY,
    UNKNOWN,
    WEBHOOK,
    Scenario,
)
from adsync.ingest.client import IngestClient
from adsync.ingest.wire import AckCode, VerdictCode
from adsync.queue.store import Queue
from adsync.secret import Secret
from adsync.testing.soffid import FakeSoffid
from adsync.testing.webhook import WebhookTarget

POLL = 0.1  # seconds between two looks at the queue
SCENARIO_TIMEOUT = 30.0  # a scenario that has not settled by then fails the demo
CLIENT_TIMEOUT = 10.0


class DemoFailed(Exception):
    """Something the demo needs did not happen (the message names it, never a password)."""


@dataclass
class DemoOutcome:
    results: list[Result]
    workdir: Path
    kept: bool

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hostport(url: str) -> str:
    return url.split("://", 1)[-1]


SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on BSDs


def socket_dir(workdir: Path) -> Path:
    """``workdir``, or a short private dir under /tmp when a long $TMPDIR would make the
    socket path too long for ``bind``. The caller removes it."""
    if len(os.fsencode(workdir / "ingest.sock")) <= SOCKET_PATH_MAX:
        return workdir
    return Path(tempfile.mkdtemp(prefix="adsync-demo-", dir="/tmp"))


def demo_config(
    workdir: Path, webhook: WebhookTarget, soffid: FakeSoffid, sockets: Path | None = None
) -> dict[str, Any]:
    """The embedded config: everything in ``workdir``, TCP and metrics off, short retries."""
    return {
        "ingest": {
            "unix_socket": str((sockets or workdir) / "ingest.sock"),
            "allowed_uids": [os.getuid()],
            "tcp": None,
            "psk_file": str(workdir / "filter.key"),
        },
        "queue": {"path": str(workdir / "queue.db")},
        "keys": {"provider": "file", "path": str(workdir / "master.key")},
        "precheck": {"backends": [WEBHOOK], "timeout": "1500ms", "on_undecided": "accept"},
        "logging": {"level": "info", "format": "json"},
        "metrics": {"listen": None},
        "dispatch": {"shutdown_grace": "2s"},
        "backends": {
            WEBHOOK: {
                "type": "webhook",
                "url": webhook.url,
                "check_url": webhook.check_url,
                "secret": f"file:{workdir / 'webhook.secret'}",
                "timeout": "5s",
                "retry": RETRY,
            },
            SOFFID: {
                "type": "soffid",
                "url": soffid.url,
                "agent": SOFFID_AGENT,
                "timeout": "5s",
                "retry": RETRY,
            },
        },
    }


@contextlib.contextmanager
def daemon_log(path: Path) -> Any:
    """The daemon's JSON log goes to ``path``; the previous logging setup comes back after."""
    from adsync.observe.logs import configure_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream: TextIO = path.open("a", encoding="utf-8")
    try:
        configure_logging("info", "json", stream=stream)
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        stream.close()


class Demo:
    def __init__(self, presenter: Presenter, *, pause: float, sockets: Path) -> None:
        self.presenter = presenter
        self.sockets = sockets
        self.pause = pause
        self.board = Board()
        self._t0 = time.monotonic()
        self._socket: Path | None = None
        self._queue: Queue | None = None

    # --- narration and watching ------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def say(self, text: str) -> None:
        self.presenter.event(self.board.note(self.elapsed(), text))
        self.presenter.refresh()

    async def look(self) -> None:
        """One snapshot of the queue onto the board and the screen."""
        if self._queue is None:
            return
        infos = await self._queue.list_deliveries(limit=200)
        for event in self.board.update(infos, self.elapsed(), time.time()):
            self.presenter.event(event)
        self.presenter.refresh()

    async def watch(self) -> None:
        while True:
            await self.look()
            await asyncio.sleep(POLL)

    async def until(self, what: str, done: Callable[[], bool], within: float) -> None:
        deadline = time.monotonic() + within
        while not done():
            if time.monotonic() > deadline:
                raise DemoFailed(f"{what}: not done within {within:g}s")
            await asyncio.sleep(POLL / 2)

    # --- the wire --------------------------------------------------------------------------

    def _client(self) -> IngestClient:
        assert self._socket is not None
        return IngestClient.unix(self._socket, timeout=CLIENT_TIMEOUT)

    async def check(self, scenario: Scenario) -> Row:
        row = self.board.add_check(scenario)
        self.say(f"{scenario.account}: CHECK (may this password be set?) {PASSWORD_NOTE}")
        password = Secret(DEMO_PASSWORDS[scenario.account])

        def ask() -> tuple[VerdictCode, str]:
            with self._client() as client:
                reply = client.check(
                    account=scenario.account,
                    password=password,
                    domain=DOMAIN,
                    source_host=SOURCE_HOST,
                )
            return reply.status, reply.reason

        status, reason = await asyncio.to_thread(ask)
        verdict = {VerdictCode.ACCEPT: "accepted", VerdictCode.REJECT: "rejected"}.get(
            status, "undecided"
        )
        self.presenter.event(self.board.check_answered(row, verdict, reason, self.elapsed()))
        self.presenter.refresh()
        return row

    async def change(self, scenario: Scenario) -> list[Row]:
        event_id = os.urandom(16)
        rows = self.board.expect_change(scenario, event_id.hex(), BACKENDS)
        self.say(f"{scenario.account}: CHANGE sent over the Unix socket {PASSWORD_NOTE}")
        password = Secret(DEMO_PASSWORDS[scenario.account])

        def send() -> tuple[AckCode, str]:
            with self._client() as client:
                ack = client.change(
                    account=scenario.account,
                    password=password,
                    domain=DOMAIN,
                    changed_at_ms=int(time.time() * 1000),
                    event_id=event_id,
                    source_host=SOURCE_HOST,
                )
            return ack.status, ack.reason

        status, reason = await asyncio.to_thread(send)
        if status != AckCode.STORED:
            self.board.change_refused(rows, reason)
            raise DemoFailed(f"the daemon did not store {scenario.account}'s change: {reason}")
        self.say(f"{scenario.account}: ACK 0, stored durably in the encrypted queue")
        return rows

    # --- the story -------------------------------------------------------------------------

    async def story(self, webhook: WebhookTarget, soffid: FakeSoffid) -> None:
        self.say(f"Scenario {DELIVERED.number}: {DELIVERED.title}")
        await self.check(DELIVERED)
        await self.change(DELIVERED)
        await self.until(DELIVERED.title, lambda: self.board.settled(DELIVERED), SCENARIO_TIMEOUT)
        await asyncio.sleep(self.pause)

        self.say(f"Scenario {POLICY.number}: {POLICY.title} (the target's policy says no)")
        await self.check(POLICY)
        self.say(f"{POLICY.account}: AD refuses the password; no CHANGE follows")
        await asyncio.sleep(self.pause)

        self.say(
            f"Scenario {UNKNOWN.number}: {UNKNOWN.title} "
            "(no target knows the account; retried until unknown_user_grace ends)"
        )
        await self.change(UNKNOWN)
        await self.until(UNKNOWN.title, lambda: self.board.settled(UNKNOWN), SCENARIO_TIMEOUT)
        await asyncio.sleep(self.pause)

        self.say(f"Scenario {OUTAGE.number}: {OUTAGE.title}: the soffid target goes down")
        await soffid.go_down()
        await self.change(OUTAGE)
        down = self.board.row(OUTAGE, SOFFID)
        await self.until(
            "the outage", lambda: down.attempts >= OUTAGE_ATTEMPTS or down.done, SCENARIO_TIMEOUT
        )
        self.say("soffid comes back; the change waits for its next retry")
        await soffid.come_back()
        await self.until(OUTAGE.title, lambda: self.board.settled(OUTAGE), SCENARIO_TIMEOUT)
        self._check_digests(webhook, soffid)

    def _check_digests(self, webhook: WebhookTarget, soffid: FakeSoffid) -> None:
        """The targets got exactly the passwords sent: digests compared, values never shown."""
        for scenario in (DELIVERED, OUTAGE):
            want = sha256_hex(DEMO_PASSWORDS[scenario.account])
            got_hook = [
                d.password_sha256 for d in webhook.deliveries if d.account == scenario.account
            ]
            got_soffid = [
                r.password_sha256
                for r in soffid.received
                if r.operation == "propagate" and r.account == scenario.account
            ]
            if want not in got_hook or want not in got_soffid:
                raise DemoFailed(f"a target did not receive {scenario.account}'s password intact")
        self.say("both targets received exactly the passwords sent (compared as SHA-256 digests)")

    async def run(self, workdir: Path) -> list[Result]:
        secret = secrets.token_hex(32)
        (workdir / "webhook.secret").write_text(secret, encoding="utf-8")
        webhook = WebhookTarget(secret)
        soffid = FakeSoffid(agent=SOFFID_AGENT, accounts=set(KNOWN_ACCOUNTS))
        async with webhook, soffid:
            webhook.slow(TARGET_LATENCY)
            soffid.slow(TARGET_LATENCY)
            webhook.respond(404, account=UNKNOWN.account, reason="no such account")
            webhook.answer_check(
                422,
                reason=POLICY_REASON,
                password_sha256=sha256_hex(DEMO_PASSWORDS[POLICY.account]),
            )
            data = demo_config(workdir, webhook, soffid, self.sockets)
            config_path = workdir / "adsync.yaml"  # JSON is YAML; for --keep and `adsync queue`
            config_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            config: Config = config_from_data(data, base_dir=workdir, source=str(config_path))
            self._socket = config.ingest.unix_socket
            daemon = Daemon(config)
            header = [
                f"adsync demo: the real daemon on a temp config in {workdir}",
                f"targets: {WEBHOOK} = webhook fake on {_hostport(webhook.base_url)}, "
                f"{SOFFID} = Soffid fake on {_hostport(soffid.url)}",
                "passwords are never shown; retry delays are shortened to seconds for the demo",
            ]
            self.presenter.start(self.board, header)
            async with self._daemon(daemon):
                watcher = asyncio.create_task(self.watch())
                try:
                    await self.story(webhook, soffid)
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
                await self.look()
                self.say("stopping the daemon")
        return judge(self.board)

    @contextlib.asynccontextmanager
    async def _daemon(self, daemon: Daemon) -> AsyncIterator[None]:
        try:
            await daemon.start()
            self._queue = daemon.queue
            self.say("daemon started: queue open, Unix socket listening, two lanes running")
            yield
        finally:
            self._queue = None
            await daemon.stop()


async def run_demo(presenter: Presenter, *, keep: bool, pause: float = 0.8) -> DemoOutcome:
    """Run every scenario, stop everything, remove the temp dir unless ``keep``."""
    old_umask = os.umask(0o077)
    workdir = Path(tempfile.mkdtemp(prefix="adsync-demo-"))
    sockets = socket_dir(workdir)
    demo = Demo(presenter, pause=pause, sockets=sockets)
    results: list[Result] = []
    closing: list[str] = []
    try:
        with daemon_log(workdir / "daemon.log"):
            try:
                results = await demo.run(workdir)
            except DemoFailed as exc:
                demo.say(f"demo failed: {exc}")
                results = judge(demo.board)
                closing.append(f"demo failed: {exc}")
            except asyncio.CancelledError:  # Ctrl-C: everything above has been stopped
                closing.append("interrupted")
                raise
    finally:
        os.umask(old_umask)
        if sockets != workdir:
            shutil.rmtree(sockets, ignore_errors=True)
        if keep:
            closing.append(f"kept the demo's files (config, queue, key, log) in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            closing.append("daemon stopped, targets stopped, temp dir removed")
        presenter.finish(results, closing)
    return DemoOutcome(results, workdir, keep)


__all__ = ["Demo", "DemoFailed", "DemoOutcome", "demo_config", "run_demo"]
