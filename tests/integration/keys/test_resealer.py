"""The re-sealer and key check on real queue files (no daemon process)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

import pytest

from adsync.queue.rotation import add_data_key, check_rows, reseal_batch, retire_unused
from adsync.testing.leaks import REGISTRY

from .conftest import Workdir, data_keys, fill, make_change, password_digests, row_keys


async def test_old_key_is_retired_only_once_no_row_uses_it(work: Workdir) -> None:
    queue = await work.open()
    try:
        expected = await fill(queue, 30)
        master = work.keys.master_key()
        new_id = await queue.write(lambda c: add_data_key(c, master, time.time()))
        assert new_id == 3  # 1 = first data key, 2 = account-hash key
        await queue.reload_keys()
        sealer = queue.sealer
        assert sealer.active_key_id == new_id

        first = await queue.write(lambda c: reseal_batch(c, sealer, 0, 10))
        assert (first.resealed, first.done) == (10, False)
        assert await queue.write(lambda c: retire_unused(c, new_id)) == []  # 20 rows still on 1
        assert row_keys(work.db) == {1: 20, 3: 10}
        assert data_keys(work.db) == [(1, 0), (3, 1)]

        rest = await queue.write(lambda c: reseal_batch(c, sealer, first.last_id, 100))
        assert (rest.resealed, rest.done, rest.unreadable) == (20, True, [])
        assert await queue.write(lambda c: retire_unused(c, new_id)) == [1]
        assert row_keys(work.db) == {3: 30}
        assert data_keys(work.db) == [(3, 1)]
        # every password still opens, now under key 3, to the same value
        assert await password_digests(queue) == expected
    finally:
        await queue.close()


async def test_the_daemon_maintainer_switches_appends_and_reseals_in_the_background(
    work: Workdir,
) -> None:
    queue = await work.open()
    try:
        expected = await fill(queue, 25)
        maintainer = queue.key_maintainer
        assert maintainer is not None
        # another process (the CLI) adds the key: the daemon's sealer does not know it yet
        with sqlite3.connect(work.db) as conn:
            new_id = add_data_key(conn, work.keys.master_key(), time.time())
        change, pw = make_change()
        await queue.append_many([change])  # still sealed under the old key: nothing broke
        expected[change.event_id] = pw
        result = await maintainer.step()
        assert queue.sealer.active_key_id == new_id
        assert result.resealed == 26 and result.retired == [1] and result.unreadable == []
        change, pw = make_change()
        await queue.append_many([change])
        expected[change.event_id] = pw
        assert row_keys(work.db) == {new_id: 27}
        assert await password_digests(queue) == expected
        # and the claims the dispatcher makes open with the new key
        batch = await queue.claim("t", 100)
        assert len(batch.claims) == 27
        from .conftest import digest

        got = {c.change.event_id: digest(c.change.password.reveal()) for c in batch.claims}
        assert got == expected
    finally:
        await queue.close()


def _tamper(db: str, column: str, event_id: bytes) -> None:
    with sqlite3.connect(db) as conn:
        (sealed,) = conn.execute(
            f"SELECT {column} FROM changes WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        flipped = bytearray(sealed)
        flipped[-1] ^= 0x01
        conn.execute(
            f"UPDATE changes SET {column} = ? WHERE event_id = ?",
            (bytes(flipped), event_id),
        )


@pytest.mark.slow
async def test_keys_check_detects_a_tampered_and_a_moved_row(work: Workdir) -> None:
    queue = await work.open()
    ids = list(await fill(queue, 6))
    await queue.close()
    ok = work.cli("check")
    assert ok.returncode == 0, ok.stderr
    assert "key 1 (active): 6 rows open, 0 do not" in ok.stdout
    assert "ok: 6 rows checked, every one opens" in ok.stdout

    _tamper(str(work.db), "password_sealed", ids[1])
    with sqlite3.connect(work.db) as conn:  # a ciphertext copied onto another row
        (acc,) = conn.execute(
            "SELECT account_sealed FROM changes WHERE event_id = ?", (ids[3],)
        ).fetchone()
        conn.execute("UPDATE changes SET account_sealed = ? WHERE event_id = ?", (acc, ids[4]))
    bad = work.cli("check")
    assert bad.returncode == 1
    assert "key 1 (active): 4 rows open, 2 do not" in bad.stdout
    assert ids[1].hex() in bad.stderr and ids[4].hex() in bad.stderr
    for good in (ids[0], ids[2], ids[3], ids[5]):
        assert good.hex() not in bad.stderr
    output = bad.stdout + bad.stderr
    assert not [pw for pw in REGISTRY.passwords if pw in output]

    queue = await work.open(operator=True)
    try:
        sealer = queue.sealer
        report = await queue.read(lambda c: check_rows(c, sealer))
    finally:
        await queue.close()
    assert sorted(report.bad_event_ids) == sorted([ids[1].hex(), ids[4].hex()])


@pytest.mark.slow
async def test_a_row_that_does_not_open_keeps_its_old_key_alive(work: Workdir) -> None:
    queue = await work.open()
    ids = list(await fill(queue, 5))
    await queue.close()
    _tamper(str(work.db), "account_sealed", ids[2])
    result = work.cli("rotate")
    assert result.returncode == 1
    assert "re-sealed 4 rows under key 3" in result.stdout
    assert "1 row cannot be opened, left on the old key" in result.stderr
    assert row_keys(work.db) == {1: 1, 3: 4}
    assert data_keys(work.db) == [(1, 0), (3, 1)]  # key 1 stays while a row uses it
    check = work.cli("check")
    assert check.returncode == 1 and ids[2].hex() in check.stderr
    assert "key 3 (active): 4 rows open, 0 do not" in check.stdout
    assert "key 1 (retiring): 0 rows open, 1 do not" in check.stdout


@pytest.mark.slow
async def test_sigkill_in_the_middle_of_a_reseal_loses_nothing(work: Workdir) -> None:
    queue = await work.open()
    expected = await fill(queue, 2000)
    await queue.close()

    proc = subprocess.Popen(
        work.cli_args("rotate", "--batch", "5"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    killed_at: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                counts = row_keys(work.db)
            except sqlite3.OperationalError:  # locked for a moment by the writer
                continue
            if counts.get(3, 0) > 0:
                proc.send_signal(signal.SIGKILL)
                killed_at = counts
                break
            time.sleep(0.002)
    finally:
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL, "the re-sealer finished before it was killed"
    after_kill = row_keys(work.db)
    assert after_kill.get(1, 0) > 0 and after_kill.get(3, 0) > 0, after_kill  # really mid-way
    assert sum(after_kill.values()) == 2000
    assert killed_at.get(3, 0) <= after_kill[3]

    rerun = work.cli("reseal")
    assert rerun.returncode == 0, rerun.stderr
    assert f"re-sealed {after_kill[1]} rows under key 3" in rerun.stdout
    assert "retired data key 1" in rerun.stdout
    assert row_keys(work.db) == {3: 2000}
    assert data_keys(work.db) == [(3, 1)]
    check = work.cli("check")
    assert check.returncode == 0 and "ok: 2000 rows checked, every one opens" in check.stdout
    queue = await work.open(operator=True)
    try:
        assert await password_digests(queue) == expected
    finally:
        await queue.close()


async def test_master_key_rotation_rewraps_the_data_keys(work: Workdir) -> None:
    queue = await work.open()
    expected = await fill(queue, 8)
    await queue.close()
    old = work.keys.master_key()
    result = work.cli("rotate", "--master")
    assert result.returncode == 0, result.stderr
    assert "rewrapped 2 keys under a new master key" in result.stdout
    new = work.keys.master_key()
    assert new != old
    previous = work.path / "master.key.old"
    assert previous.read_bytes() == old and (previous.stat().st_mode & 0o077) == 0
    assert not (work.path / "master.key.new").exists()
    queue = await work.open(operator=True)  # opens with the new master key
    try:
        assert await password_digests(queue) == expected
    finally:
        await queue.close()
    # the old master key no longer opens the queue
    from adsync.queue.errors import QueueKeyError
    from adsync.queue.keys import FileKeyProvider
    from adsync.queue.store import Queue

    try:
        await Queue.open(work.db, FileKeyProvider(previous), [], max_pending=1, operator=True)
    except QueueKeyError:
        pass
    else:
        raise AssertionError("the old master key still opens the queue")


@pytest.mark.slow
async def test_an_interrupted_master_rotation_is_finished_by_a_rerun(work: Workdir) -> None:
    from adsync.queue.rotation import rewrap_keys

    queue = await work.open()
    expected = await fill(queue, 4)
    await queue.close()
    # simulate a crash after the rewrap committed, before the new file was moved into place
    old = work.keys.master_key()
    new = bytes(range(32))
    work.keys.stage(new)
    with sqlite3.connect(work.db) as conn:
        rewrap_keys(conn, old, new)
    refused = work.cli("check")
    assert refused.returncode == 2 and "does not open" in refused.stderr
    result = work.cli("rotate", "--master")
    assert result.returncode == 0, result.stderr
    assert "finished an interrupted master key rotation" in result.stdout
    assert work.keys.master_key() == new
    queue = await work.open(operator=True)
    try:
        assert await password_digests(queue) == expected
    finally:
        await queue.close()
