"""End to end: adsyncflt.dll under wine → the real daemon (`adsync run`, TCP + PSK) →
the webhook backend → WebhookTarget. Passwords are compared as SHA-256 digests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from lsa_wine import (
    Harness,
    free_port,
    read_spool,
    sha,
    wait_until,
    winpath,
    write_changes,
    write_checks,
)

from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY
from adsync.testing.webhook import WebhookTarget

SECRET_ENV = "ADSYNC_NATIVE_WEBHOOK_SECRET"


@pytest.fixture
async def target(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WebhookTarget]:
    monkeypatch.setenv(SECRET_ENV, "native-e2e-webhook-key")
    async with WebhookTarget("native-e2e-webhook-key") as t:
        yield t


@pytest.fixture
def make_daemon(filter_setup, target: WebhookTarget, tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[DaemonProcess] = []

    def make(port: int, **precheck: Any) -> DaemonProcess:
        work = tmp_path / f"daemon{len(started)}"
        work.mkdir()
        backend = {
            "type": "webhook",
            "url": target.url,
            "check_url": target.check_url,
            "secret": f"env:{SECRET_ENV}",
            "concurrency": 8,
            "timeout": "5s",
            "retry": {"backoff": {"initial": "100ms", "max": "500ms", "factor": 2, "jitter": 0.1}},
        }
        config = base_config(
            work,
            {"hook": backend},
            ingest={
                "unix_socket": None,
                "tcp": f"127.0.0.1:{port}",
                "psk_file": str(filter_setup.key_file),
            },
            precheck={"backends": ["hook"], "timeout": "1s", "on_undecided": "accept", **precheck},
        )
        daemon = DaemonProcess(work, config)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        try:
            daemon.stop(timeout=30)
        except Exception:
            daemon.kill()


def diagnose(h: Harness, filter_setup: Any, daemon: DaemonProcess, target: WebhookTarget) -> str:
    """What to look at when deliveries do not arrive (no passwords in any of it)."""
    return (
        f"{len(target.deliveries)} delivered, {len(target.invalid)} invalid; "
        f"harness: {h.lines()[:3]} … {h.lines()[-2:]}\n"
        f"filter log:\n{filter_setup.log_text()[-3000:]}\ndaemon log:\n{daemon.log_tail(30)}"
    )


SPECIAL = ["Pässwörd€1", "L" * 128 + "€" * 127 + "!", "astral 😀𝄞🂡 末尾", "\U0001f600" * 10]


async def test_1000_changes_delivered_intact(
    filter_setup, make_daemon: Callable[..., DaemonProcess], target: WebhookTarget, tmp_path: Path
) -> None:
    passwords = SPECIAL + [f"Bulk-{i:04d}-Ä€😀" for i in range(1000 - len(SPECIAL))]
    rows = [(2000 + i, f"bulk{i:04d}", REGISTRY.password(p)) for i, p in enumerate(passwords)]
    assert len(rows) == 1000 and len(passwords[1]) == 256
    port = free_port()
    daemon = make_daemon(port)
    daemon.start()
    filter_setup.configure(port)
    h = Harness(filter_setup.wine, tmp_path)
    await h.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", rows)),
        "wait",
        winpath(h.stop_file),
        "240",
    )
    try:
        delivered = await target.wait_for_deliveries(1000, within=240)
    except TimeoutError:
        pytest.fail(diagnose(h, filter_setup, daemon, target))
    h.release()
    assert await h.wait() == 0
    assert target.invalid == []
    by_account = {d.account: d for d in delivered}
    assert len(by_account) == 1000 and len(delivered) == 1000
    for rid, account, pw in rows:
        assert by_account[account].password_sha256 == sha(pw), account
        assert by_account[account].rid == rid
    # the harness timed every PasswordChangeNotify (p99 is asserted in bench/)
    ns = sorted(h.notify_ns())
    assert len(ns) == 1000
    p99_us = ns[int(len(ns) * 0.99) - 1] / 1000
    print(f"PasswordChangeNotify under wine: p50 {ns[500] / 1000:.1f} us, p99 {p99_us:.1f} us")
    log = filter_setup.log_text()
    assert "connected" in log
    assert not any(p in log for p in SPECIAL)  # the log holds event names and numbers only


async def test_check_rejected_by_backend_makes_filter_false(
    filter_setup, make_daemon, target: WebhookTarget, tmp_path
) -> None:
    bad, good = REGISTRY.password("Rejected-By-Policy-1"), REGISTRY.password("Fine-By-Policy-2")
    target.answer_check(422, reason="too weak", password_sha256=sha(bad))
    target.answer_check(200, password_sha256=sha(good))
    port = free_port()
    make_daemon(port).start()
    filter_setup.configure(port, OnUndecided="accept")
    h = Harness(filter_setup.wine, tmp_path)
    checks = [(False, "hank", "Hank H", bad), (True, "hank", "Hank H", good)]
    assert await h.run("init", "filter", winpath(write_checks(tmp_path / "k.txt", checks))) == 0
    assert [r for r, _ in h.filter_results()] == [0, 1]
    assert sorted(target.password_digests("check")) == sorted([sha(bad), sha(good)])


async def test_daemon_down_then_started_delivers_spool(
    filter_setup, make_daemon, target: WebhookTarget, tmp_path
) -> None:
    # 160 accounts with one change each, 10 accounts with four: 200 changes
    rows = [
        (3000 + i, f"solo{i:03d}", REGISTRY.password(f"Solo-{i:03d}-Spooled€")) for i in range(160)
    ]
    multi = [
        (3500 + k, f"multi{k}", REGISTRY.password(f"Multi-{k}-{n}-Spooled€"))
        for n in range(4)
        for k in range(10)
    ]
    rows += multi
    port = free_port()
    filter_setup.configure(port)
    h = Harness(filter_setup.wine, tmp_path)
    await h.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", rows)),
        "wait",
        winpath(h.stop_file),
        "240",
    )
    assert await wait_until(
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == 200, 60
    )
    daemon = make_daemon(port)
    daemon.start()
    await wait_until(lambda: filter_setup.spool_file.stat().st_size == 0, 120)
    # every record ACKed by the daemon
    assert filter_setup.spool_file.stat().st_size == 0, diagnose(h, filter_setup, daemon, target)
    try:
        await target.wait_for_deliveries(170, within=120)
    except TimeoutError:
        pytest.fail(diagnose(h, filter_setup, daemon, target))
    h.release()
    assert await h.wait() == 0
    assert target.invalid == []
    delivered = list(target.deliveries)
    got = {d.account: d.password_sha256 for d in delivered if d.account.startswith("solo")}
    assert got == {a: sha(p) for _, a, p in rows if a.startswith("solo")}
    for k in range(10):
        # the daemon may supersede an older pending change of an account, never reorder:
        # what arrives is an in-order subsequence that ends with the newest password
        want = [sha(p) for _, a, p in multi if a == f"multi{k}"]
        seen = [d.password_sha256 for d in delivered if d.account == f"multi{k}"]
        assert seen and seen[-1] == want[-1]
        assert seen == [x for x in want if x in seen]


async def test_harness_killed_with_spool_then_daemon_started_loses_nothing(
    filter_setup, make_daemon, target: WebhookTarget, tmp_path
) -> None:
    rows = [
        (4000 + i, f"kill{i:02d}", REGISTRY.password(f"Killed-Spool-{i:02d}-€")) for i in range(50)
    ]
    port = free_port()
    filter_setup.configure(port)
    first = Harness(filter_setup.wine, tmp_path, name="first")
    await first.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", rows)),
        "wait",
        winpath(first.stop_file),
        "120",
    )
    assert await wait_until(
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == 50, 60
    )
    first.kill()  # the process dies with 50 changes in the spool and none sent
    await first.wait()
    daemon = make_daemon(port)
    daemon.start()
    second = Harness(filter_setup.wine, tmp_path, name="second")
    await second.start("init", "wait", winpath(second.stop_file), "120")
    try:
        delivered = await target.wait_for_deliveries(50, within=120)
    except TimeoutError:
        pytest.fail(diagnose(second, filter_setup, daemon, target))
    second.release()
    assert await second.wait() == 0
    assert {d.account: d.password_sha256 for d in delivered} == {a: sha(p) for _, a, p in rows}
    assert target.invalid == []


class RecordingProxy:
    """A TCP relay on 127.0.0.1 between the DLL and the daemon that keeps every byte of
    both directions: what a packet capture of the loopback would show."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.to_daemon = bytearray()
        self.to_filter = bytearray()
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pump(reader, up_writer, self.to_daemon),
            self._pump(up_reader, writer, self.to_filter),
            return_exceptions=True,
        )

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bytearray
    ) -> None:
        try:
            while data := await src.read(65536):
                record.extend(data)
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()


async def test_loopback_capture_of_100_changes_holds_no_password_nor_psk(
    filter_setup, make_daemon, target: WebhookTarget, tmp_path
) -> None:
    """Issue 10 item 11: the DLL → daemon link is sealed (protocol v2) after the handshake."""
    passwords = SPECIAL + [f"Capture-{i:03d}-Ä€😀" for i in range(100 - len(SPECIAL))]
    rows = [(6000 + i, f"cap{i:03d}", REGISTRY.password(p)) for i, p in enumerate(passwords)]
    checks = [(False, "capcheck", "Cap Check", REGISTRY.password("Checked-Capture-€-1"))]
    daemon_port = free_port()
    daemon = make_daemon(daemon_port)  # ingest.allow_unsealed_v1 left at its default (off)
    daemon.start()
    async with RecordingProxy(daemon_port) as proxy:
        filter_setup.configure(proxy.port)
        h = Harness(filter_setup.wine, tmp_path)
        await h.start(
            "init",
            "filter",
            winpath(write_checks(tmp_path / "k.txt", checks)),
            "notify",
            winpath(write_changes(tmp_path / "c.txt", rows)),
            "wait",
            winpath(h.stop_file),
            "240",
        )
        try:
            delivered = await target.wait_for_deliveries(100, within=240)
        except TimeoutError:
            pytest.fail(diagnose(h, filter_setup, daemon, target))
        h.release()
        assert await h.wait() == 0
    assert {d.account: d.password_sha256 for d in delivered} == {a: sha(p) for _, a, p in rows}
    assert [r for r, _ in h.filter_results()] == [1]  # the CHECK went through the proxy too
    assert proxy.connections >= 2  # the worker's link and PasswordFilter's own
    # what was captured is protocol v2: a HELLO of version 2 first, then sealed frames
    assert proxy.to_daemon[4:10] == b"ADSY\x02\x01"
    assert len(proxy.to_daemon) > 100 * 40 and len(proxy.to_filter) > 100 * 32
    captured = bytes(proxy.to_daemon) + bytes(proxy.to_filter)
    secrets = [p for _, _, p in rows] + [pw for *_, pw in checks]
    # digests only in what a failure prints
    seen = [
        sha(secret)
        for secret in secrets
        if secret.encode("utf-8") in captured
        or secret.encode("utf-16-le", "surrogatepass") in captured
    ]
    assert seen == []
    psk_seen = filter_setup.psk in captured
    assert psk_seen is False
    assert b"cap000" not in captured and b"capcheck" not in captured  # accounts sealed too
