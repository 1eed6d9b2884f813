"""The Unix socket transport: file mode, group, stale sockets, and the peer uid check."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adsync.ingest.codec import AckReply, FrameSplitter, decode
from adsync.ingest.server import IngestServer
from adsync.ingest.wire import AckCode

from .conftest import Harness, StubHandler, change_fields, raw_frame

NOBODY = 65534

# Runs as uid/gid 65534: connects, sends a CHANGE, prints the hex of everything it got back.
PEER_SCRIPT = r"""
import os, socket, sys
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
frame = bytes.fromhex(sys.stdin.read().strip())
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
got = b""
try:
    s.sendall(frame)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
        if len(got) >= 4 and len(got) >= 4 + int.from_bytes(got[:4], "big"):
            break
except (BrokenPipeError, ConnectionResetError):
    pass
print(os.getpid(), got.hex())
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory uid 65534 can reach (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="adsync-ingest-"))
    path.chmod(0o711)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def run_as_nobody(sock_path: Path, frame: bytes) -> tuple[int, bytes]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", PEER_SCRIPT, str(sock_path)],
        input=frame.hex(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid, _, hexdata = out.stdout.strip().partition(" ")
    return int(pid), bytes.fromhex(hexdata)


async def test_socket_file_mode_0600(harness: Harness) -> None:
    server = await harness.start()
    assert server.unix_path is not None
    st = os.stat(server.unix_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert [p.name for p in server.unix_path.parent.iterdir()] == ["filter.sock"]


async def test_socket_file_mode_0660_with_group(harness: Harness) -> None:
    server = await harness.start(socket_group=NOBODY)
    assert server.unix_path is not None
    st = os.stat(server.unix_path)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == NOBODY


async def test_wrong_uid_is_closed_before_any_reply(
    handler: StubHandler, shared_dir: Path, captured_logs: list[dict[str, Any]]
) -> None:
    server = IngestServer(
        handler, unix_path=shared_dir / "f.sock", allowed_uids={0}, socket_group=NOBODY
    )
    await server.start()
    try:
        frame = raw_frame(0x20, change_fields(b"nobody-pw"), request_id=4)
        pid, got = await _in_thread(run_as_nobody, shared_dir / "f.sock", frame)
    finally:
        await server.stop()
    assert got == b""
    assert handler.changes == []
    assert server.counters.peers_refused == 1
    assert server.counters.connections_accepted == 0
    refusals = [e for e in captured_logs if e["event"] == "ingest_peer_refused"]
    assert [(e["uid"], e["pid"]) for e in refusals] == [(NOBODY, pid)]
    assert not any("nobody-pw" in repr(e) for e in captured_logs)


async def test_allowed_uid_is_served(handler: StubHandler, shared_dir: Path) -> None:
    server = IngestServer(
        handler, unix_path=shared_dir / "f.sock", allowed_uids={NOBODY}, socket_group=NOBODY
    )
    await server.start()
    try:
        frame = raw_frame(0x20, change_fields(b"nobody-pw"), request_id=4)
        pid, got = await _in_thread(run_as_nobody, shared_dir / "f.sock", frame)
    finally:
        await server.stop()
    (payload,) = FrameSplitter().feed(got)
    assert decode(payload) == (4, AckReply(AckCode.STORED))
    ((change, peer),) = handler.changes
    assert change.password.reveal_bytes() == b"nobody-pw"
    assert (peer.transport, peer.description) == ("unix", f"uid={NOBODY} pid={pid}")


async def test_own_uid_is_always_allowed(harness: Harness, handler: StubHandler) -> None:
    server = await harness.start(allowed_uids=set())
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(b"pw"), request_id=1))
    assert await raw.reply() == (1, AckReply(AckCode.STORED))


async def test_stale_socket_is_replaced_but_live_one_and_regular_file_are_not(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "filter.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens
    server = await harness.start()
    raw = await harness.unix(server)
    await raw.send(raw_frame(0x20, change_fields(b"pw"), request_id=1))
    assert await raw.reply() == (1, AckReply(AckCode.STORED))

    second = IngestServer(harness.handler, unix_path=path)
    with pytest.raises(RuntimeError, match="another process is listening"):
        await second.start()
    assert os.path.exists(path)  # the live daemon's socket is untouched

    regular = tmp_path / "regular"
    regular.write_text("keep me")
    third = IngestServer(harness.handler, unix_path=regular)
    with pytest.raises(RuntimeError, match="is not a socket"):
        await third.start()
    assert regular.read_text() == "keep me"


async def test_stop_accepting_removes_socket_and_keeps_existing_connections(
    harness: Harness, until: Any
) -> None:
    server = await harness.start()
    raw = await harness.unix(server)
    await until(lambda: server.counters.connections_open == 1)
    await server.stop_accepting()
    assert server.unix_path is not None and not server.unix_path.exists()
    await raw.send(raw_frame(0x20, change_fields(b"pw"), request_id=1))
    assert await raw.reply() == (1, AckReply(AckCode.STORED))


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


async def test_connection_made_just_before_stop_accepting_is_served(harness: Harness) -> None:
    """Closing the listener under a just-accepted connection left that peer hanging."""
    server = await harness.start()
    raw = await harness.unix(server)  # accepted by the kernel, not yet attached
    await server.stop_accepting()
    await raw.send(raw_frame(0x20, change_fields(b"pw"), request_id=1))
    assert await raw.reply() == (1, AckReply(AckCode.STORED))
