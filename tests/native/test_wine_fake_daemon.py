"""The DLL under wine against a protocol-faithful fake daemon: the behaviours the real
daemon cannot be made to show (silence, not knowing the key, busy on demand)."""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path

from lsa_fakedaemon import FakeDaemon, SeenChange
from lsa_wine import (
    Harness,
    free_port,
    read_spool,
    sha,
    spool_then_kill,
    wait_until,
    winpath,
    write_changes,
    write_checks,
)

from adsync.testing.leaks import REGISTRY

SPECIAL = [
    "Pässwörd€1",
    "x" * 255 + "Z",  # 256 UTF-16 units
    "astral 😀𝄞🂡 end",
    "ab\u00e9\u4e2d\U0010fffd",
]


async def test_changes_arrive_byte_exact(filter_setup, tmp_path: Path) -> None:
    passwords = [REGISTRY.password(p) for p in SPECIAL] + [
        REGISTRY.password(f"Simple-{i}-pw") for i in range(20)
    ]
    changes = [(1100 + i, f"user{i % 5}", pw) for i, pw in enumerate(passwords)]
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        start_ms = int(time.time() * 1000)
        await h.start(
            "init",
            "notify",
            winpath(write_changes(tmp_path / "c.txt", changes)),
            "wait",
            winpath(h.stop_file),
            "60",
        )
        seen = daemon.wait_changes(len(changes), within=30)
        h.release()
        assert await h.wait() == 0
    assert daemon.errors == []
    assert [c.password_sha256 for c in seen] == [sha(p) for p in passwords]
    assert [c.account for c in seen] == [a for _, a, _ in changes]
    assert [c.rid for c in seen] == [r for r, _, _ in changes]
    assert len({c.event_id for c in seen}) == len(seen)
    assert all(len(c.event_id) == 16 for c in seen)
    seqs = [c.seq for c in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(start_ms - 5000 <= c.changed_at <= start_ms + 60000 for c in seen)
    assert h.lines()[1] == ["init", "1"]
    assert len(h.notify_ns()) == len(changes)  # the harness measured every call


async def test_filter_applies_verdicts(filter_setup, tmp_path: Path) -> None:
    pw = REGISTRY.password("Candidate-Pw-1")
    checks = write_checks(
        tmp_path / "k.txt", [(False, "alice", "Alice A", pw), (True, "bob", "", pw)]
    )
    results = {}
    for verdict in (0, 1, 2):
        for on_undecided in ("accept", "reject"):
            with FakeDaemon(filter_setup.psk, verdict=verdict) as daemon:
                filter_setup.configure(daemon.port, OnUndecided=on_undecided)
                h = Harness(filter_setup.wine, tmp_path, name=f"v{verdict}{on_undecided}")
                assert await h.run("init", "filter", winpath(checks)) == 0
            assert daemon.errors == []
            assert [c["account"] for c in daemon.checks] == ["alice", "bob"]
            assert {c["password_sha256"] for c in daemon.checks} == {sha(pw)}
            assert [c["set_operation"] for c in daemon.checks] == [b"\x00", b"\x01"]
            assert daemon.checks[0]["full_name"] == "Alice A"
            results[verdict, on_undecided] = [r for r, _ in h.filter_results()]
    assert results == {
        (0, "accept"): [1, 1],
        (0, "reject"): [1, 1],
        (1, "accept"): [0, 0],  # rejected by the daemon: PasswordFilter returns FALSE
        (1, "reject"): [0, 0],
        (2, "accept"): [1, 1],  # undecided: on_undecided
        (2, "reject"): [0, 0],
    }


async def test_silent_daemon_filter_returns_by_deadline(filter_setup, tmp_path: Path) -> None:
    pw = REGISTRY.password("Silent-Daemon-Pw")
    checks = write_checks(tmp_path / "k.txt", [(False, "carol", "", pw)])
    outcome = {}
    for on_undecided in ("accept", "reject"):
        with FakeDaemon(filter_setup.psk, verdict=None) as daemon:
            filter_setup.configure(daemon.port, DeadlineMs=1500, OnUndecided=on_undecided)
            h = Harness(filter_setup.wine, tmp_path, name=f"silent-{on_undecided}")
            assert await h.run("init", "filter", winpath(checks)) == 0
            assert len(daemon.checks) == 1  # the CHECK did reach the silent daemon
        [(result, ns)] = h.filter_results()
        outcome[on_undecided] = result
        # waited for the daemon, and gave up at the deadline (not a performance bound:
        # a generous margin covers wine and a loaded machine)
        assert 1.4e9 <= ns <= 1.5e9 + 1.0e9
    assert outcome == {"accept": 1, "reject": 0}


async def test_unreachable_daemon_filter_applies_on_undecided(filter_setup, tmp_path: Path) -> None:
    pw = REGISTRY.password("Nobody-Listens-Pw")
    checks = write_checks(tmp_path / "k.txt", [(False, "dave", "", pw)])
    filter_setup.configure(free_port(), OnUndecided="reject")
    h = Harness(filter_setup.wine, tmp_path)
    assert await h.run("init", "filter", winpath(checks)) == 0
    assert [r for r, _ in h.filter_results()] == [0]


async def test_daemon_without_the_key_receives_no_password(filter_setup, tmp_path: Path) -> None:
    passwords = [REGISTRY.password(p) for p in ("Stranger-Must-Not-See-1", "Pässwörd€-secret")]
    changes = write_changes(tmp_path / "c.txt", [(1, "erin", p) for p in passwords])
    checks = write_checks(tmp_path / "k.txt", [(False, "erin", "", p) for p in passwords])
    with FakeDaemon(None) as stranger:
        filter_setup.configure(stranger.port, OnUndecided="accept")
        h = Harness(filter_setup.wine, tmp_path)
        assert (
            await h.run(
                "init", "filter", winpath(checks), "notify", winpath(changes), "sleep", "1500"
            )
            == 0
        )
        received = bytes(stranger.received)
    assert stranger.errors == []  # no client ever sent AUTH after a failed proof
    assert stranger.frame_types and set(stranger.frame_types) == {0x01}  # HELLO only
    assert stranger.changes == [] and stranger.checks == []
    for p in passwords:
        for enc in ("utf-8", "utf-16-le", "utf-16-be"):
            assert p.encode(enc) not in received
    assert [r for r, _ in h.filter_results()] == [1, 1]  # on_undecided
    assert "daemon_proof_failed" in filter_setup.log_text()


async def test_busy_ack_keeps_changes_in_order(filter_setup, tmp_path: Path) -> None:
    rows = [(7, ("frank", "gail")[i % 2], REGISTRY.password(f"Busy-Order-{i}")) for i in range(30)]
    budget = {"busy": 6}

    def ack(change: SeenChange) -> int:
        if budget["busy"] > 0:
            budget["busy"] -= 1
            return 2
        return 0

    with FakeDaemon(filter_setup.psk, ack=ack) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        await h.start(
            "init",
            "notify",
            winpath(write_changes(tmp_path / "c.txt", rows)),
            "wait",
            winpath(h.stop_file),
            "60",
        )
        seen = daemon.wait_changes(len(rows), within=40)
        h.release()
        assert await h.wait() == 0
    assert daemon.errors == []
    assert budget["busy"] == 0
    assert len(seen) == len(rows)  # every change stored, none twice
    for account in ("frank", "gail"):  # and in order per account
        assert [c.password_sha256 for c in seen if c.account == account] == [
            sha(p) for _, a, p in rows if a == account
        ]


async def test_invalid_utf16_is_dropped_and_logged_without_content(filter_setup, tmp_path) -> None:
    good = REGISTRY.password("Valid-After-Bad-1")
    lone = "bad\ud800pw-lone-surrogate"
    too_long = REGISTRY.password("€" * 400)  # 1,200 bytes of UTF-8: over the 1,024 limit
    rows = [(1, "gina", lone), (1, "gina", too_long), (1, "gina", good)]
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        await h.start(
            "init",
            "notify",
            winpath(write_changes(tmp_path / "c.txt", rows)),
            "wait",
            winpath(h.stop_file),
            "30",
        )
        seen = daemon.wait_changes(1, within=20)
        h.release()
        assert await h.wait() == 0
    assert [c.password_sha256 for c in seen] == [sha(good)]
    log = filter_setup.log_text()
    assert log.count("change_not_captured") == 2
    assert "code=-12" in log and "code=-1 " in log  # ADSY_E_SURROGATE, ADSY_E_SPACE
    for p in (good, too_long, "pw-lone-surrogate"):
        assert p not in log


async def test_daemon_down_changes_spooled_then_delivered_in_order(filter_setup, tmp_path) -> None:
    rows = [
        (500 + i % 4, f"acct{i % 4}", REGISTRY.password(f"Spooled-{i:03d}-Ünï€"))
        for i in range(200)
    ]
    port = free_port()
    filter_setup.configure(port)
    h = Harness(filter_setup.wine, tmp_path)
    await h.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", rows)),
        "wait",
        winpath(h.stop_file),
        "90",
    )
    # nobody listens: everything lands in the spool, sealed
    assert await wait_until(
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == 200, 30
    )
    records = read_spool(filter_setup.spool_file, filter_setup.psk)
    assert [hashlib.sha256(r[0x12]).hexdigest() for r in records] == [sha(p) for _, _, p in rows]
    assert [struct.unpack(">I", r[0x16])[0] for r in records] == [rid for rid, _, _ in rows]
    raw = filter_setup.spool_file.read_bytes()
    assert all(p.encode() not in raw for _, _, p in rows[:5])
    with FakeDaemon(filter_setup.psk, port=port) as daemon:
        seen = daemon.wait_changes(200, within=60)
        assert await wait_until(lambda: filter_setup.spool_file.stat().st_size == 0, 10)
        h.release()
        assert await h.wait() == 0
    assert daemon.errors == []
    assert len(seen) == 200
    for account in {a for _, a, _ in rows}:
        assert [c.password_sha256 for c in seen if c.account == account] == [
            sha(p) for _, a, p in rows if a == account
        ]


async def test_harness_killed_with_full_spool_loses_nothing(filter_setup, tmp_path) -> None:
    rows = [(900, f"kim{i % 3}", REGISTRY.password(f"Survives-Kill-{i:03d}")) for i in range(60)]
    port, _ = await spool_then_kill(filter_setup, tmp_path, rows, hold=90)
    with FakeDaemon(filter_setup.psk, port=port) as daemon:
        second = Harness(filter_setup.wine, tmp_path, name="second")
        await second.start("init", "wait", winpath(second.stop_file), "90")
        seen = daemon.wait_changes(60, within=60)
        second.release()
        assert await second.wait() == 0
    assert daemon.errors == []
    assert sorted(c.password_sha256 for c in seen) == sorted(sha(p) for _, _, p in rows)
    for account in {a for _, a, _ in rows}:
        assert [c.password_sha256 for c in seen if c.account == account] == [
            sha(p) for _, a, p in rows if a == account
        ]
    assert "spool_found code=0 count=60" in filter_setup.log_text()


async def test_dropped_connection_resends_without_loss(filter_setup, tmp_path) -> None:
    rows = [
        (40 + i % 6, f"ivan{i % 6}", REGISTRY.password(f"Dropped-Conn-{i:02d}")) for i in range(40)
    ]
    with FakeDaemon(filter_setup.psk, drop_at=(5, 17)) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        await h.start(
            "init",
            "notify",
            winpath(write_changes(tmp_path / "c.txt", rows)),
            "wait",
            winpath(h.stop_file),
            "60",
        )
        seen = daemon.wait_changes(len(rows), within=40)
        h.release()
        assert await h.wait() == 0
    assert daemon.errors == []
    assert daemon.handshakes >= 3  # reconnected after each drop
    assert len(seen) == len(rows)
    for account in {a for _, a, _ in rows}:
        assert [c.password_sha256 for c in seen if c.account == account] == [
            sha(p) for _, a, p in rows if a == account
        ]


async def test_spool_torn_tail_cut_and_foreign_spool_set_aside(filter_setup, tmp_path) -> None:
    rows = [(77, f"jo{i}", REGISTRY.password(f"Torn-Tail-Kept-{i}")) for i in range(5)]
    port = free_port()
    filter_setup.configure(port)
    first = Harness(filter_setup.wine, tmp_path, name="first")
    await first.start(
        "init",
        "notify",
        winpath(write_changes(tmp_path / "c.txt", rows)),
        "wait",
        winpath(first.stop_file),
        "60",
    )
    assert await wait_until(
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == 5, 30
    )
    first.kill()
    await first.wait()
    # a crash in the middle of an append: a record header with nothing after it
    with filter_setup.spool_file.open("ab") as f:
        f.write(b"ASP1\x00\x00\x00\x40" + b"\x00" * 7)
    with FakeDaemon(filter_setup.psk, port=port) as daemon:
        second = Harness(filter_setup.wine, tmp_path, name="second")
        await second.start("init", "wait", winpath(second.stop_file), "60")
        seen = daemon.wait_changes(5, within=30)
        # ACKed records leave the spool once the worker has processed the ACKs
        assert await wait_until(lambda: filter_setup.spool_file.stat().st_size == 0, 20)
        second.release()
        assert await second.wait() == 0
    assert [c.password_sha256 for c in seen] == [sha(p) for _, _, p in rows]
    assert "spool_torn_tail_cut" in filter_setup.log_text()

    # records sealed under another key (the PSK was replaced): kept aside, not destroyed
    other = tmp_path / "other"
    other.mkdir()
    third = Harness(filter_setup.wine, other, name="third")
    more = [(78, "kay", REGISTRY.password("Sealed-Under-Old-Key"))]
    await third.start(
        "init",
        "notify",
        winpath(write_changes(other / "c.txt", more)),
        "wait",
        winpath(third.stop_file),
        "60",
    )
    assert await wait_until(
        lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) == 1, 30
    )
    third.kill()
    await third.wait()
    sealed = filter_setup.spool_file.read_bytes()
    filter_setup.key_file.write_bytes(bytes(32))  # a new key
    fourth = Harness(filter_setup.wine, other, name="fourth")
    await fourth.start("init", "wait", winpath(fourth.stop_file), "60")
    # the worker (not InitializeChangeNotify's thread) checks the spool
    assert await wait_until(lambda: "spool_set_aside" in filter_setup.log_text(), 30)
    fourth.release()
    assert await fourth.wait() == 0
    set_aside = list(filter_setup.spool_dir.glob("adsyncflt.spool.bad-*"))
    assert len(set_aside) == 1 and set_aside[0].read_bytes() == sealed
    assert filter_setup.spool_file.stat().st_size == 0
    assert "spool_set_aside" in filter_setup.log_text()


async def test_tampered_or_replayed_ack_drops_the_link_and_loses_nothing(
    filter_setup, tmp_path: Path
) -> None:
    """A sealed reply that fails its tag (changed, or an old one replayed) is never taken as
    an ACK: the DLL drops the connection, reconnects and resends (same event ids)."""
    for mangle in ("flip", "replay"):
        passwords = [REGISTRY.password(f"Mangled-{mangle}-{i}-€") for i in range(2)]
        changes = [(1300 + i, f"mangle{i}", pw) for i, pw in enumerate(passwords)]
        with FakeDaemon(filter_setup.psk, mangle_ack=mangle) as daemon:
            filter_setup.configure(daemon.port)
            h = Harness(filter_setup.wine, tmp_path, name=mangle)
            await h.start(
                "init",
                "notify",
                winpath(write_changes(tmp_path / f"{mangle}.txt", changes[:1])),
                "sleep",
                "1500",  # the second change goes in its own batch, after the first's ACK
                "notify",
                winpath(write_changes(tmp_path / f"{mangle}2.txt", changes[1:])),
                "wait",
                winpath(h.stop_file),
                "60",
            )
            assert await wait_until(lambda: daemon.handshakes >= 2 and daemon.mangled, 30)
            seen = daemon.wait_changes(len(changes), within=30)
            h.release()
            assert await h.wait() == 0
        assert daemon.mangled == 1, mangle
        assert daemon.handshakes >= 2, mangle  # the link was dropped and made again
        assert sorted(c.password_sha256 for c in seen) == sorted(sha(p) for p in passwords)
        assert "ack_not_received code=-106" in filter_setup.log_text(), mangle  # ADSY_NET_SEAL
