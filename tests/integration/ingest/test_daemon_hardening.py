"""Issue 13 (items 1, 5, 6) against the real daemon: ``adsync run`` in a subprocess,
other local uids played by child processes that drop root."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.client import IngestClient
from adsync.ingest.psk import load_or_create_psk
from adsync.ingest.wire import AckCode
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.leaks import REGISTRY

from .hostile import (
    CONNECT_UNIX,
    HOLD_TCP,
    NOBODY,
    finish,
    free_port,
    needs_root,
    run_as,
    wait_line,
)

HOLD_SECRET_ENV = "ADSYNC_HARDENING_HOOK_KEY"
# A target nobody listens on (port 9, discard): changes are ACKed and stay queued.
PARKED = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": f"env:{HOLD_SECRET_ENV}"}


@pytest.fixture
def daemons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(HOLD_SECRET_ENV, "hardening-webhook-key")
    made: list[DaemonProcess] = []

    def make(**sections: Any) -> DaemonProcess:
        work = tmp_path / f"d{len(made)}"
        work.mkdir()
        os.chmod(work, 0o755)  # other uids must be able to reach what the test allows them
        daemon = DaemonProcess(work, base_config(work, {"parked": PARKED}, **sections))
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.proc is not None and daemon.proc.poll() is None:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        try:
            daemon.stop(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()


def one_change(client: IngestClient, tag: str) -> int:
    password = REGISTRY.password(f"Hard-{tag}-{os.urandom(6).hex()}")
    ack = client.change(
        account=f"u{os.urandom(4).hex()}",
        password=Secret(password),
        changed_at_ms=1_700_000_000_000,
        event_id=os.urandom(16),
    )
    return int(ack.status)


def tcp_daemon(daemons: Any) -> tuple[DaemonProcess, int]:
    port = free_port()
    daemon = daemons(ingest={"tcp": f"127.0.0.1:{port}", "allowed_uids": [0]})
    daemon.start()
    return daemon, port


@needs_root
def test_unprivileged_uid_holding_200_tcp_connections_locks_out_no_source(daemons: Any) -> None:
    """Item 1: 'nobody' holds 200 unauthenticated TCP connections (reopening any the daemon
    closes); root on the Unix socket and an authenticated TCP source, each with a long-lived
    connection and a fresh connection per change, get every change ACKed 0."""
    daemon, port = tcp_daemon(daemons)
    psk = load_or_create_psk(Path(daemon.config["ingest"]["psk_file"]))
    holder = run_as(NOBODY, HOLD_TCP, "127.0.0.1", str(port), "200")
    try:
        assert wait_line(holder) == "ready"
        statuses: list[int] = []
        with (
            IngestClient.unix(daemon.unix_socket) as unix,
            IngestClient.tcp("127.0.0.1", port, psk) as tcp,
        ):
            for i in range(40):
                statuses.append(one_change(unix, "unix-long"))
                statuses.append(one_change(tcp, "tcp-long"))
                with IngestClient.unix(daemon.unix_socket) as fresh:
                    statuses.append(one_change(fresh, "unix-fresh"))
                with IngestClient.tcp("127.0.0.1", port, psk) as fresh_tcp:
                    statuses.append(one_change(fresh_tcp, f"tcp-fresh-{i}"))
        assert holder.poll() is None, "the holder must still be holding its connections"
    finally:
        reconnects = int(finish(holder))  # how often it had to reopen one
    assert statuses == [AckCode.STORED] * 160
    assert reconnects > 0  # the daemon really did close the flooder's surplus
    events = [e.get("event") for e in daemon.log_events()]
    assert "ingest_handshakes_displaced" in events


@pytest.fixture
def second_user() -> Iterator[tuple[int, int, int]]:
    """(uid in the group, uid not in it, gid): made with useradd/groupadd, removed after
    (root only: its tests are marked ``needs_root``)."""
    tag = os.urandom(3).hex()
    group, member, outsider = f"adsg{tag}", f"adsm{tag}", f"adso{tag}"
    subprocess.run(["groupadd", group], check=True)
    for user in (member, outsider):
        subprocess.run(["useradd", "--no-create-home", "-s", "/usr/sbin/nologin", user], check=True)
    subprocess.run(["usermod", "-aG", group, member], check=True)
    try:
        yield pwd.getpwnam(member).pw_uid, pwd.getpwnam(outsider).pw_uid, grp.getgrnam(group).gr_gid
    finally:
        for user in (member, outsider):
            subprocess.run(["userdel", user], check=False)
        subprocess.run(["groupdel", group], check=False)


@needs_root
def test_socket_group_reaches_the_socket_on_a_fresh_boot(
    daemons: Any, second_user: tuple[int, int, int]
) -> None:
    """Item 5: the socket's directory does not exist (``/run`` at boot). With socket_group
    the daemon makes it 0750 with the group: a member connects (and is then admitted by
    uid), a uid outside the group cannot reach the socket at all."""
    member, outsider, gid = second_user
    run_dir = Path(f"/run/adsync-test-{os.urandom(4).hex()}")  # plays /run
    run_dir.mkdir(mode=0o755)
    sock = run_dir / "adsync" / "filter.sock"  # /run/adsync/: not there at boot
    try:
        daemon = daemons(
            ingest={
                "unix_socket": str(sock),
                "socket_group": grp.getgrgid(gid).gr_name,
                "allowed_uids": [0, member],
            }
        )
        daemon.start()
        st = os.stat(sock.parent)
        assert (oct(st.st_mode & 0o777), st.st_gid) == (oct(0o750), gid)
        assert oct(os.stat(sock).st_mode & 0o777) == oct(0o660)
        ok = run_as(member, CONNECT_UNIX, str(sock), gid=member, groups=(gid,))
        no = run_as(outsider, CONNECT_UNIX, str(sock), gid=outsider)
        assert (finish(ok), finish(no)) == ("ok", "EACCES")
        with IngestClient.unix(sock) as client:
            assert one_change(client, "group") == AckCode.STORED
    finally:
        subprocess.run(["rm", "-rf", str(run_dir)], check=False)


def test_socket_directory_without_group_is_private(daemons: Any, tmp_path: Path) -> None:
    """Item 5, the default: no socket_group, the directory the daemon creates is 0700."""
    sock = tmp_path / "fresh" / "run" / "filter.sock"
    daemon = daemons(ingest={"unix_socket": str(sock)})
    daemon.start()
    assert oct(os.stat(sock.parent).st_mode & 0o777) == oct(0o700)


def test_clients_ride_out_a_stalled_daemon(daemons: Any) -> None:
    """Item 6: the daemon is stopped (SIGSTOP) while 300 clients connect at once, more than
    the old backlog of 100. Each connects within its deadline (the kernel queues it, or the
    client retries EAGAIN), and every change is ACKed 0 once the daemon runs again.
    (``max_connections`` is raised: this is about the backlog, not the connection limit,
    whose refusal is the daemon's explicit "resend later".)"""
    daemon = daemons(ingest={"max_connections": 512})
    daemon.start()
    assert daemon.proc is not None
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def source(i: int) -> None:
        try:
            with IngestClient.unix(daemon.unix_socket, timeout=60) as client:
                status = one_change(client, f"stall-{i}")
            with lock:
                statuses.append(status)
        except Exception as exc:  # recorded: the assertion below shows which
            with lock:
                errors.append(type(exc).__name__ + ": " + str(exc))

    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=source, args=(i,)) for i in range(300)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)  # the stall: every client is connecting or waiting meanwhile
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    for thread in threads:
        thread.join(90)
    assert errors == []
    assert statuses == [AckCode.STORED] * 300


def test_hook_frames_client_retries_a_full_backlog(daemons: Any, tmp_path: Path) -> None:
    """Item 6, the Samba hooks' own client: a listening socket with a full backlog and no
    accept (a stalled daemon) answers EAGAIN; ``exchange`` keeps trying until the deadline
    and gets its answer once the peer accepts, instead of failing at once."""
    import socket as socketmod

    from adsync.hooks.frames import exchange

    daemon = daemons()
    daemon.start()
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    fillers: list[socketmod.socket] = []
    try:
        while True:  # fill the backlog until the kernel refuses (EAGAIN)
            s = socketmod.socket(socketmod.AF_UNIX)
            s.setblocking(False)
            try:
                s.connect(str(daemon.unix_socket))
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
            assert len(fillers) < 100_000
        result: list[Any] = []

        def hook() -> None:
            from adsync.hooks.frames import check_frame

            frame = check_frame(
                account="stall", password=b"Stall-Check-1", full_name="", domain="", source_host=""
            )
            REGISTRY.password("Stall-Check-1")
            try:
                result.append(exchange(str(daemon.unix_socket), frame, 30.0))
            except Exception as exc:
                result.append(exc)

        thread = threading.Thread(target=hook)
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive(), f"gave up during the stall: {result}"
        for s in fillers:
            s.close()
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    thread.join(60)
    assert result == [(0, "")] or (isinstance(result[0], tuple) and result[0][0] == 0), result
