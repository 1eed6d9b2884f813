"""Other local users, for tests of the real daemon: processes run as another uid.

The child is a stdlib-only ``python3 -c`` program (the test venv may live where that
uid cannot read). Needs root, which drops privileges for the child only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

NOBODY = 65534


needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="acting as a second local uid needs root (the suite runs as root in CI)",
)


def interpreter() -> str:
    """A Python the other uid can execute: the system one if present, else ours."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def run_as(
    uid: int, source: str, *args: str, gid: int | None = None, groups: tuple[int, ...] = ()
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [interpreter(), "-c", source, *args],
        user=uid,
        group=gid if gid is not None else uid,
        extra_groups=list(groups),
        cwd="/",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )


# Holds N connections to host:port open without a byte sent; any the daemon closes is
# opened again at once (a persistent attacker). Prints "ready" once N are open, then how
# many reconnects it made when its stdin closes.
HOLD_TCP = r"""
import selectors, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
def connect():
    s = socket.create_connection((host, port))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
for _ in range(n):
    connect()
sel.register(sys.stdin, selectors.EVENT_READ)
print("ready", flush=True)
reconnects = 0
while True:
    for key, _ in sel.select():
        if key.fileobj is sys.stdin:
            print(reconnects, flush=True)
            sys.exit(0)
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            reconnects += 1
            connect()
"""

# Connects to a Unix socket; prints "ok" or the errno name.
CONNECT_UNIX = r"""
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("ok")
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc.errno)))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """Close the child's stdin and return what it printed last."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out.strip().splitlines()[-1] if out.strip() else ""


def wait_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        raise AssertionError(
            f"child exited: {proc.wait(5)} {proc.stderr.read() if proc.stderr else ''}"
        )
    return line
