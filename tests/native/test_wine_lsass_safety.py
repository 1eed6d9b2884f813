"""What keeps the filter safe inside LSASS (issue 10, items 1, 4, 6, 7, 10): no LSASS
thread waits on the disk or on a lock held across I/O; PasswordFilter answers at once
while the daemon is known to be down; the spool is capped and opened by the worker; a
slow or busy daemon cannot keep changes in memory only; a fault in the DLL's code does
not take the process down. The stalled disk and the fault come from the test-hook build
(build/adsyncflt_test.dll, win32/testhooks.c); the slow refusal is a real socket whose
accept queue is full (lsa_safety.SlowRefusal)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lsa_fakedaemon import FakeDaemon, SeenChange
from lsa_safety import (
    EVENTLOG_DEBUG,
    HookHarness,
    SlowRefusal,
    build_test_dll,
    reg_set_dword,
    seal_record,
    wine_with,
)
from lsa_wine import (
    BUILD,
    NATIVE,
    Harness,
    free_port,
    read_spool,
    sha,
    wait_until,
    winpath,
    write_changes,
    write_checks,
)

from adsync.testing.leaks import REGISTRY


@pytest.fixture(scope="module")
def test_dll(native_build: Path) -> Path:
    return build_test_dll()


def objdump(*args: str) -> str:
    return subprocess.run(
        ["x86_64-w64-mingw32-objdump", *args], capture_output=True, text=True, check=True
    ).stdout


def test_release_dll_is_hardened_and_carries_no_test_hooks(native_build: Path) -> None:
    dll = native_build / "adsyncflt.dll"
    m = re.search(r"DllCharacteristics\s+([0-9a-fA-F]+)", objdump("-p", str(dll)))
    assert m
    flags = int(m.group(1), 16)
    assert flags & 0x0040, "DYNAMIC_BASE (ASLR)"
    assert flags & 0x0020, "HIGH_ENTROPY_VA"
    assert flags & 0x0100, "NX_COMPAT (DEP)"
    assert "__stack_chk_fail" in objdump("-t", str(dll))  # -fstack-protector-strong
    # ...with our guard seeding, not libssp's, which calls CryptAcquireContext in DllMain
    assert "CryptAcquireContext" not in objdump("-p", str(dll))
    data = dll.read_bytes()
    for hook in ("ADSY_TEST_STALL_FILE", "adsy-test-fault"):
        assert hook.encode("utf-16-le") not in data and hook.encode() not in data


@pytest.mark.slow
def test_lock_free_queue_and_log_ring_clean_under_tsan(tmp_path: Path) -> None:
    """The core's threaded tests (4 producers and the consumer on the change queue; the
    log ring) under ThreadSanitizer: no data race in what LSASS's threads share."""
    log = tmp_path / "tsan.log"
    with log.open("wb") as out:
        rc = subprocess.run(
            ["make", "-C", str(NATIVE), "tsan"], stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert re.search(r"\d+ checks, 0 failures", text) and "ThreadSanitizer" not in text


async def test_stalled_spool_never_stalls_notify_or_filter(
    filter_setup, tmp_path: Path, test_dll: Path
) -> None:
    """The worker hangs in a spool write with the spool lock held (a dead disk).
    PasswordChangeNotify and PasswordFilter all return while it still hangs: structurally
    they cannot have waited for it. A full queue is a counted drop, reported later."""
    stall = tmp_path / "stall"
    rows = [
        (300 + i, f"stall{i % 7}", REGISTRY.password(f"Stalled-Disk-{i:03d}")) for i in range(200)
    ]
    checks = [(i % 2 == 0, "stall0", "", REGISTRY.password("Stalled-Check-Pw")) for i in range(20)]
    filter_setup.configure(
        free_port(), QueueCapacity=64, OnUndecided="reject", OnUndecidedSet="reject"
    )
    wine = wine_with(filter_setup.wine, ADSY_TEST_STALL_FILE=winpath(stall))
    h = HookHarness(wine, tmp_path)
    go, done = tmp_path / "go", tmp_path / "done"
    await h.start(
        "init", "wait", winpath(go), "60",
        "notify", winpath(write_changes(tmp_path / "c.txt", rows)),
        "filter", winpath(write_checks(tmp_path / "k.txt", checks)),
        "wait", winpath(done), "120", "sleep", "3000",
    )  # fmt: skip
    # the worker has opened the spool and found the daemon down; now the disk stalls
    assert await wait_until(lambda: "connect_failed" in filter_setup.log_text(), 30)
    stall.write_text("stall")
    go.write_text("go")
    try:
        finished = await wait_until(lambda: len(h.filter_results()) == len(checks), 60)
        notify_ns = h.notify_ns()
        filters = h.filter_results()
        assert stall.exists()
    finally:
        stall.unlink()
        done.write_text("done")
    assert finished, h.lines()[-3:]
    assert len(notify_ns) == len(rows)
    assert [r for r, _ in filters] == [0] * len(checks)  # OnUndecided, at once
    assert await h.wait() == 0
    # 64 slots: the first 64 changes wait in memory for the disk, the other 136 are dropped
    # (counted and reported once the worker runs again), none was written by LSASS's thread
    assert await wait_until(lambda: "queue_full_change_dropped" in filter_setup.log_text(), 10)
    log = filter_setup.log_text()
    assert "queue_full_change_dropped code=64 count=136" in log
    spooled = read_spool(filter_setup.spool_file, filter_setup.psk)
    assert [hashlib.sha256(r[0x12]).hexdigest() for r in spooled] == [
        sha(p) for _, _, p in rows[:64]
    ]
    print(f"during the stall: notify max {max(notify_ns) / 1e3:.0f} us, "
          f"filter max {max(ns for _, ns in filters) / 1e3:.0f} us")  # fmt: skip


async def test_daemon_down_slow_refusal_filter_answers_at_once(filter_setup, tmp_path) -> None:
    """A connect that neither succeeds nor fails (SYN dropped): the worker finds out once,
    then every PasswordFilter answers OnUndecided at once - per operation kind - instead of
    spending DeadlineMs; when the daemon is back, the daemon decides again."""
    deadline_ms = 6000
    pw = REGISTRY.password("Slow-Refusal-Pw-1")
    checks = write_checks(tmp_path / "k.txt", [(i % 2 == 1, f"sr{i}", "", pw) for i in range(40)])
    slow = SlowRefusal()
    port = slow.port
    try:
        filter_setup.configure(port, DeadlineMs=deadline_ms, ConnectTimeoutMs=1000,
                               OnUndecided="reject", OnUndecidedSet="accept",
                               BackoffInitialMs=200, BackoffMaxMs=300)  # fmt: skip
        h = Harness(filter_setup.wine, tmp_path)
        go, back = tmp_path / "go", tmp_path / "back"
        await h.start(
            "init", "wait", winpath(go), "60", "filter", winpath(checks),
            "wait", winpath(back), "60", "filter", winpath(checks),
        )  # fmt: skip
        # the worker's own connect timed out (code -100): it knows the daemon is down
        assert await wait_until(lambda: "connect_failed code=-100" in filter_setup.log_text(), 30)
        go.write_text("go")
        assert await wait_until(lambda: len(h.filter_results()) == 40, 60)
    finally:
        slow.close()
    first = h.filter_results()
    # a change: OnUndecided=reject; a set (admin reset): OnUndecidedSet=accept
    assert [r for r, _ in first] == [0, 1] * 20
    assert all(ns < deadline_ms * 1e6 / 4 for _, ns in first), "answered before the deadline"
    with FakeDaemon(filter_setup.psk, verdict=1, port=port) as daemon:
        assert await wait_until(lambda: "connected" in filter_setup.log_text(), 30)
        back.write_text("back")
        assert await h.wait() == 0
    second = h.filter_results()[40:]
    assert [r for r, _ in second] == [0] * 40  # the daemon's verdict (reject) again
    assert len(daemon.checks) == 40
    ns = sorted(n for _, n in first)
    print(f"daemon down: PasswordFilter p50 {ns[20] / 1e3:.0f} us, max {ns[-1] / 1e3:.0f} us, "
          f"DeadlineMs {deadline_ms}")  # fmt: skip


async def test_every_connect_socket_asks_for_no_syn_retransmissions(filter_setup, tmp_path) -> None:
    """SIO_TCP_INITIAL_RTO (_WSAIOW(IOC_VENDOR, 17)) with a TCP_INITIAL_RTO_PARAMETERS (4
    bytes) on each socket, after FIONBIO and before its connect - read from wine's winsock
    trace, since wine itself refuses the ioctl (logged once, at info)."""
    pw = REGISTRY.password("Rto-Check-Pw")
    filter_setup.configure(free_port())
    wine = wine_with(filter_setup.wine, WINEDEBUG="-all,trace+winsock")
    h = HookHarness(wine, tmp_path, dll=BUILD / "adsyncflt.dll")
    checks = winpath(write_checks(tmp_path / "k.txt", [(False, "rto", "", pw)]))
    assert await h.run("init", "sleep", "300", "filter", checks) == 0
    calls = [
        "rto" if "_WSAIOW(IOC_VENDOR, 17), in_buff" in line and "in_size 0x4" in line
        else "fionbio" if "WSAIoctl" in line and "FIONBIO" in line
        else "connect"
        for line in h.stderr_text().splitlines()
        if "WSAIoctl" in line or ":connect socket " in line
    ]  # fmt: skip
    # the worker's next probe may be cut between its ioctls and its connect by the exit
    while calls and calls[-1] != "connect":
        calls.pop()
    assert calls.count("rto") >= 2  # the worker's probe and PasswordFilter's own connect
    assert calls.count("connect") == calls.count("rto")
    for i, call in enumerate(calls):
        if call == "connect":
            assert calls[i - 2 : i] == ["fionbio", "rto"], calls
    assert "syn_retransmissions_not_disabled code=10045" in filter_setup.log_text()


async def test_boot_leaves_the_spool_to_the_worker(
    filter_setup, tmp_path: Path, test_dll: Path
) -> None:
    """InitializeChangeNotify returns while the spool cannot even be opened (the disk
    stalls): the spool is opened, read and decrypted on the worker thread; its records
    are delivered once the disk answers."""
    now = int(time.time() * 1000)
    old = [(f"boot{i}", REGISTRY.password(f"Boot-Spool-{i:02d}")) for i in range(30)]
    filter_setup.spool_dir.mkdir()
    filter_setup.spool_file.write_bytes(
        b"".join(seal_record(filter_setup.psk, a, p, now, i + 1) for i, (a, p) in enumerate(old))
    )
    stall = tmp_path / "stall"
    stall.write_text("stall")
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port)
        wine = wine_with(filter_setup.wine, ADSY_TEST_STALL_FILE=winpath(stall))
        h = HookHarness(wine, tmp_path)
        await h.start("init-timed", "wait", winpath(h.stop_file), "60")
        try:
            assert await wait_until(lambda: bool(h.lines_of("init-timed")), 30)
            assert stall.exists()  # init returned while the spool was unreachable
            assert daemon.changes == []
        finally:
            stall.unlink()
        seen = daemon.wait_changes(len(old), within=30)
        assert await wait_until(lambda: filter_setup.spool_file.stat().st_size == 0, 20)
        assert await wait_until(lambda: "spool_found" in filter_setup.log_text(), 20)
        h.release()
        assert await h.wait() == 0
    [[_, ok, _ns]] = h.lines_of("init-timed")
    assert ok == "1"
    assert [c.password_sha256 for c in seen] == [sha(p) for _, p in old]
    assert "spool_found code=0 count=30" in filter_setup.log_text()


async def test_spool_count_cap_drops_with_event_log_entry(filter_setup, tmp_path) -> None:
    rows = [(10 + i, f"cap{i}", REGISTRY.password(f"Spool-Cap-{i:02d}")) for i in range(25)]
    filter_setup.configure(free_port(), SpoolMaxRecords=10)
    wine = wine_with(filter_setup.wine, WINEDEBUG=EVENTLOG_DEBUG)
    h = HookHarness(wine, tmp_path, dll=BUILD / "adsyncflt.dll")
    await h.start("init", "notify", winpath(write_changes(tmp_path / "c.txt", rows)),
                  "wait", winpath(h.stop_file), "60")  # fmt: skip
    REGISTRY.watch(tmp_path / "harness.err")
    assert await wait_until(lambda: "spool_full_change_dropped" in filter_setup.log_text(), 30)
    h.release()
    assert await h.wait() == 0
    spooled = read_spool(filter_setup.spool_file, filter_setup.psk)
    assert [hashlib.sha256(r[0x12]).hexdigest() for r in spooled] == [
        sha(p) for _, _, p in rows[:10]
    ]
    assert "spool_full_change_dropped code=10 count=15" in filter_setup.log_text()
    # wine's ReportEventW: an error event of source adsyncflt with our one string (the
    # first report at once; later ones at most once a minute, so its count may be partial)
    assert re.search(r"adsyncflt: spool_full_change_dropped code=10 count=\d+", h.stderr_text())


async def test_spool_age_cap_drops_old_records_with_event_log_entry(filter_setup, tmp_path) -> None:
    now = int(time.time() * 1000)
    old = [(f"age{i}", REGISTRY.password(f"Too-Old-{i}")) for i in range(4)]
    fresh = [(f"age{i}", REGISTRY.password(f"Fresh-{i}")) for i in range(3)]
    records = [seal_record(filter_setup.psk, a, p, now - 2 * 3600_000, i + 1)
               for i, (a, p) in enumerate(old)]  # fmt: skip
    records += [seal_record(filter_setup.psk, a, p, now - 60_000, 10 + i)
                for i, (a, p) in enumerate(fresh)]  # fmt: skip
    filter_setup.spool_dir.mkdir()
    filter_setup.spool_file.write_bytes(b"".join(records))
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port, SpoolMaxAgeSeconds=3600)
        wine = wine_with(filter_setup.wine, WINEDEBUG=EVENTLOG_DEBUG)
        h = HookHarness(wine, tmp_path, dll=BUILD / "adsyncflt.dll")
        await h.start("init", "wait", winpath(h.stop_file), "60")
        seen = daemon.wait_changes(3, within=30)
        assert await wait_until(lambda: filter_setup.spool_file.stat().st_size == 0, 20)
        h.release()
        assert await h.wait() == 0
    assert [c.password_sha256 for c in seen] == [sha(p) for _, p in fresh]
    assert "spool_expired_change_dropped code=3600 count=4" in filter_setup.log_text()
    assert "adsyncflt: spool_expired_change_dropped code=3600 count=4" in h.stderr_text()


async def _spooled_then_delivered_after_kill(filter_setup, tmp_path: Path, ack) -> None:  # type: ignore[no-untyped-def]
    rows = [(50 + i, f"slow{i % 3}", REGISTRY.password(f"Slow-Ack-{i:02d}")) for i in range(9)]
    port = free_port()
    with FakeDaemon(filter_setup.psk, ack=ack, port=port) as daemon:
        filter_setup.configure(port, SpoolAfterMs=1000, AckTimeoutMs=30000)
        h = Harness(filter_setup.wine, tmp_path, name="first")
        await h.start("init", "notify", winpath(write_changes(tmp_path / "c.txt", rows)),
                      "wait", winpath(h.stop_file), "90")  # fmt: skip
        # the daemon holds every ACK (or answers busy): the worker makes them durable
        assert await wait_until(
            lambda: len(read_spool(filter_setup.spool_file, filter_setup.psk)) >= len(rows), 30
        ), filter_setup.log_text()[-2000:]
        # the worker writes its log after the spool (adsy_log_flush): wait for the line
        assert await wait_until(lambda: "unacked_spooled" in filter_setup.log_text(), 10)
        assert daemon.changes == []
        h.kill()  # SIGKILL: only what is in the spool survives
        await h.wait()
    with FakeDaemon(filter_setup.psk, port=port) as daemon:
        second = Harness(filter_setup.wine, tmp_path, name="second")
        await second.start("init", "wait", winpath(second.stop_file), "60")
        seen = daemon.wait_changes(len(rows), within=30)
        second.release()
        assert await second.wait() == 0
    assert sorted(c.password_sha256 for c in seen) == sorted(sha(p) for _, _, p in rows)
    for account in {a for _, a, _ in rows}:
        assert [c.password_sha256 for c in seen if c.account == account] == [
            sha(p) for _, a, p in rows if a == account
        ]


async def test_unacked_changes_are_spooled_within_the_bound(filter_setup, tmp_path) -> None:
    release = threading.Event()

    def hold(change: SeenChange) -> int:
        release.wait(60)  # the daemon is up but does not answer
        return 2

    try:
        await _spooled_then_delivered_after_kill(filter_setup, tmp_path, hold)
    finally:
        release.set()


async def test_busy_changes_are_spooled(filter_setup, tmp_path) -> None:
    await _spooled_then_delivered_after_kill(filter_setup, tmp_path, lambda change: 2)


async def test_fault_in_an_export_does_not_end_the_process(
    filter_setup, tmp_path: Path, test_dll: Path
) -> None:
    good = [REGISTRY.password("Before-Fault-1"), REGISTRY.password("After-Fault-2")]
    rows = [(1, "fa", good[0]), (2, "adsy-test-fault", REGISTRY.password("Faulting-Pw")),
            (3, "fa", good[1])]  # fmt: skip
    checks = [(False, "adsy-test-fault", "", good[0]), (False, "fa", "", good[1])]
    with FakeDaemon(filter_setup.psk, verdict=0) as daemon:
        filter_setup.configure(daemon.port, OnUndecided="reject")
        h = HookHarness(filter_setup.wine, tmp_path)
        await h.start(
            "init", "notify", winpath(write_changes(tmp_path / "c.txt", rows)),
            "filter", winpath(write_checks(tmp_path / "k.txt", checks)),
            "wait", winpath(h.stop_file), "60",
        )  # fmt: skip
        seen = daemon.wait_changes(2, within=30)
        h.release()
        assert await h.wait() == 0
    assert h.lines()[-1] == ["done", "0"]
    assert [c.password_sha256 for c in seen] == [sha(p) for p in good]
    assert [r for r, _ in h.filter_results()] == [0, 1]  # fault: OnUndecided; then the daemon
    assert len(daemon.checks) == 1
    log = filter_setup.log_text()
    assert "fault_in_change_notify" in log and "fault_in_password_filter" in log


async def test_disabled_is_read_on_every_call(filter_setup, tmp_path) -> None:
    pw = [REGISTRY.password(f"Kill-Switch-{i}") for i in range(3)]
    with FakeDaemon(filter_setup.psk, verdict=1) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        off, on = tmp_path / "off", tmp_path / "on"
        check = winpath(write_checks(tmp_path / "k.txt", [(False, "ks", "", pw[0])]))
        a, b, c = (winpath(write_changes(tmp_path / n, [(1, "ks", pw[i])])) for i, n in
                   enumerate("abc"))  # fmt: skip
        await h.start(
            "init", "filter", check, "notify", a,
            "wait", winpath(off), "60",
            "filter", check, "notify", b,
            "wait", winpath(on), "60",
            "notify", c,
            "wait", winpath(h.stop_file), "60",
        )  # fmt: skip
        daemon.wait_changes(1, within=30)
        reg_set_dword(filter_setup.wine, "Disabled", 1)
        # taken up without a restart (and recorded in the log and the Event Log)
        assert await wait_until(lambda: "kill_switch code=1" in filter_setup.log_text(), 30)
        off.write_text("x")
        assert await wait_until(lambda: len(h.filter_results()) == 2, 30)
        reg_set_dword(filter_setup.wine, "Disabled", 0)
        assert await wait_until(lambda: "kill_switch code=0" in filter_setup.log_text(), 30)
        on.write_text("x")
        seen = daemon.wait_changes(2, within=30)
        h.release()
        assert await h.wait() == 0
    assert [r for r, _ in h.filter_results()] == [0, 1]  # rejected; disabled: accepted
    assert len(daemon.checks) == 1  # the disabled call did not ask
    assert [c.password_sha256 for c in seen] == [sha(pw[0]), sha(pw[2])]  # [1] not captured


async def test_null_notify_is_not_an_error(filter_setup, tmp_path) -> None:
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path)
        await h.start("init", "notify-null", "wait", winpath(h.stop_file), "30")
        assert await wait_until(lambda: "change_without_password" in filter_setup.log_text(), 20)
        h.release()
        assert await h.wait() == 0
    assert daemon.changes == []
    assert [f[0] for f in h.lines()].count("notify-null") == 1
    assert " error " not in filter_setup.log_text()


@pytest.mark.parametrize("spool_dir", ["C:", "", "long"])
async def test_unusable_spool_dir_is_logged_and_changes_still_flow(
    filter_setup, tmp_path, spool_dir: str
) -> None:
    """Too short (would have been read past its end) or too long for the file name."""
    if spool_dir == "long":  # fits MAX_PATH itself; with "\\adsyncflt.spool" it does not
        base = winpath(tmp_path)
        spool_dir = base + "\\" + "d" * (250 - len(base))
    pw = REGISTRY.password("Short-Spool-Dir-Pw")
    with FakeDaemon(filter_setup.psk) as daemon:
        filter_setup.configure(daemon.port, SpoolDir=spool_dir)
        h = Harness(filter_setup.wine, tmp_path)
        await h.start("init", "notify", winpath(write_changes(tmp_path / "c.txt", [(1, "sd", pw)])),
                      "wait", winpath(h.stop_file), "30")  # fmt: skip
        seen = daemon.wait_changes(1, within=20)
        h.release()
        assert await h.wait() == 0
    assert h.lines()[1] == ["init", "1"]
    assert [c.password_sha256 for c in seen] == [sha(pw)]
    log = filter_setup.log_text()
    assert "spool_dir_failed" in log and "spool_unavailable" in log
