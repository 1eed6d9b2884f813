"""A damaged spool record costs that record only (the DLL under wine, the fake daemon).

The spool is filled while nobody listens, the harness is killed (or kept running), bytes
of the file are damaged from Linux, then a daemon appears: every record that still opens
is delivered, the damaged one is reported in the log, nothing is set aside."""

from __future__ import annotations

from pathlib import Path

from lsa_fakedaemon import FakeDaemon
from lsa_wine import (
    Harness,
    free_port,
    read_spool,
    sha,
    spool_then_kill,
    wait_until,
    winpath,
    write_changes,
)

from adsync.testing.leaks import REGISTRY


def record_offsets(data: bytes) -> list[int]:
    """Where each record starts (magic | ct_len | nonce | ct | tag), and the end."""
    offs, off = [], 0
    while off + 8 <= len(data):
        assert data[off : off + 4] == b"ASP1"
        offs.append(off)
        off += 20 + int.from_bytes(data[off + 4 : off + 8], "big") + 16
    return [*offs, off]


def rows(tag: str, n: int = 10) -> list[tuple[int, str, str]]:
    return [(3000 + i, f"{tag}{i}", REGISTRY.password(f"{tag}-Spool-Pw-{i:02d}")) for i in range(n)]


async def deliver(setup, tmp_path: Path, port: int, want: int):  # type: ignore[no-untyped-def]
    with FakeDaemon(setup.psk, port=port) as daemon:
        second = Harness(setup.wine, tmp_path, name="second")
        await second.start("init", "wait", winpath(second.stop_file), "60")
        seen = daemon.wait_changes(want, within=30)
        emptied = await wait_until(lambda: setup.spool_file.stat().st_size == 0, 20)
        extra = daemon.wait_changes(want + 1, within=1)  # nothing more arrives
        second.release()
        assert await second.wait() == 0
    assert daemon.errors == []
    assert emptied, setup.log_text()
    return seen, extra


async def test_flipped_bit_in_record_1_of_10_costs_that_record_only(filter_setup, tmp_path) -> None:
    changes = rows("flip")
    port, data = await spool_then_kill(filter_setup, tmp_path, changes)
    offs = record_offsets(data)
    assert len(offs) == 11
    damaged = bytearray(data)
    damaged[offs[0] + 20 + 3] ^= 0x04  # one bit of record 1's ciphertext
    filter_setup.spool_file.write_bytes(bytes(damaged))
    seen, extra = await deliver(filter_setup, tmp_path, port, 9)
    assert [c.password_sha256 for c in seen] == [sha(p) for _, _, p in changes[1:]]
    assert len(extra) == 9
    log = filter_setup.log_text()
    assert "spool_record_skipped code=-15 count=1" in log  # ADSY_E_AUTH, reported
    assert "spool_set_aside" not in log
    assert "spool_found code=0 count=9" in log
    assert not list(filter_setup.spool_dir.glob("adsyncflt.spool.bad-*"))


async def test_damaged_length_field_resynchronises(filter_setup, tmp_path) -> None:
    changes = rows("len")
    port, data = await spool_then_kill(filter_setup, tmp_path, changes)
    offs = record_offsets(data)
    damaged = bytearray(data)
    damaged[offs[4] + 6] ^= 0x01  # record 5's length now runs into record 6
    filter_setup.spool_file.write_bytes(bytes(damaged))
    seen, _ = await deliver(filter_setup, tmp_path, port, 9)
    assert [c.password_sha256 for c in seen] == [
        sha(p) for i, (_, _, p) in enumerate(changes) if i != 4
    ]
    assert "spool_record_skipped" in filter_setup.log_text()


async def test_torn_and_zero_filled_tail_loses_only_the_torn_record(filter_setup, tmp_path) -> None:
    """A crash during an append on NTFS: the last record cut short, and the file's end
    extended with zeros (the size reached the disk, the data did not)."""
    changes = rows("torn")
    port, data = await spool_then_kill(filter_setup, tmp_path, changes)
    offs = record_offsets(data)
    filter_setup.spool_file.write_bytes(data[: offs[9] + 25] + bytes(4096))
    seen, _ = await deliver(filter_setup, tmp_path, port, 9)
    assert [c.password_sha256 for c in seen] == [sha(p) for _, _, p in changes[:9]]
    log = filter_setup.log_text()
    assert f"spool_torn_tail_cut code=-2 count={25 + 4096}" in log  # reported, with its size
    assert "spool_set_aside" not in log and "spool_record_skipped" not in log


async def test_record_damaged_while_running_costs_that_record_only(filter_setup, tmp_path) -> None:
    """Damage after the start-up check (a bad sector): today the rest of the file would be
    dropped; now the worker skips that record and sends the others."""
    changes = rows("live")
    port = free_port()
    filter_setup.configure(port)
    h = Harness(filter_setup.wine, tmp_path)
    await h.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", changes)),
        "wait",
        winpath(h.stop_file),
        "60",
    )
    assert await wait_until(
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == 10, 30
    )
    offs = record_offsets(filter_setup.spool_file.read_bytes())
    with filter_setup.spool_file.open("r+b") as f:
        f.seek(offs[2] + 30)
        byte = f.read(1)
        f.seek(offs[2] + 30)
        f.write(bytes([byte[0] ^ 0x01]))
    with FakeDaemon(filter_setup.psk, port=port) as daemon:
        seen = daemon.wait_changes(9, within=30)
        emptied = await wait_until(lambda: filter_setup.spool_file.stat().st_size == 0, 20)
        h.release()
        assert await h.wait() == 0
    assert emptied
    assert [c.password_sha256 for c in seen] == [
        sha(p) for i, (_, _, p) in enumerate(changes) if i != 2
    ]
    assert "spool_record_skipped code=-15 count=1" in filter_setup.log_text()


async def test_set_aside_spool_is_replayed_through_the_daemon(
    filter_setup, tmp_path, monkeypatch
) -> None:
    """The PSK was replaced: the DLL sets the old spool aside (no record opens under the new
    key); `adsync filter spool replay` with the old key sends it to the real daemon, which
    delivers every change to the webhook target."""
    import subprocess
    import sys

    from adsync.testing.daemon import DaemonProcess, base_config
    from adsync.testing.webhook import WebhookTarget

    changes = rows("aside")
    _, sealed = await spool_then_kill(filter_setup, tmp_path, changes)
    old_key = tmp_path / "old.key"
    old_key.write_bytes(filter_setup.psk)
    old_key.chmod(0o600)
    filter_setup.key_file.write_bytes(bytes(range(32)))  # the new key
    third = Harness(filter_setup.wine, tmp_path, name="third")
    await third.start("init", "wait", winpath(third.stop_file), "60")
    # the worker (not InitializeChangeNotify's thread) checks the spool
    assert await wait_until(lambda: "spool_set_aside" in filter_setup.log_text(), 30)
    third.release()
    assert await third.wait() == 0
    [aside] = list(filter_setup.spool_dir.glob("adsyncflt.spool.bad-*"))
    assert aside.read_bytes() == sealed
    assert "spool_set_aside" in filter_setup.log_text()

    monkeypatch.setenv("ADSYNC_REPLAY_WEBHOOK_SECRET", "replay-webhook-key")
    async with WebhookTarget("replay-webhook-key") as target:
        work = tmp_path / "daemon"
        work.mkdir()
        backend = {
            "type": "webhook",
            "url": target.url,
            "secret": "env:ADSYNC_REPLAY_WEBHOOK_SECRET",
            "timeout": "5s",
        }
        daemon = DaemonProcess(work, base_config(work, {"hook": backend}))
        daemon.start()
        try:
            cli = [sys.executable, "-m", "adsync", "filter", "spool", "replay", str(aside)]
            cli += ["--key-file", str(old_key), "--config", str(daemon.config_path)]
            done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert "10 records open, 0 damaged" in done.stdout
            assert "stored 10, refused 0, busy 0" in done.stdout
            delivered = await target.wait_for_deliveries(10, within=30)
        finally:
            daemon.stop(timeout=30)
    assert sorted(d.password_sha256 for d in delivered) == sorted(sha(p) for _, _, p in changes)
    for _, _, p in changes:
        assert p not in done.stdout + done.stderr
