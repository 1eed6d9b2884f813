"""Hostile load for the ingest server: mutated frames and connection floods.

Shared by the acceptance test (tests/integration/ingest/test_flood.py: correctness and
no loss under attack) and ``bench/flood.py`` (the well-behaved client's ACK latency
with and without the attack). Three attackers, each its own process:

* ``HOSTILE`` (standard library only, so it can run as an unprivileged uid with the
  system Python): holds N TCP connections open without a byte, opening again any the
  daemon closes, and sends mutated frames before any handshake, one per connection.
* ``python -m adsync.testing.flood authed …`` (root: it has the key and may use the Unix
  socket): mutated CHANGE/CHECK frames after a real handshake, and on the Unix socket,
  which is where a field parser bug would be reached.

Mutations start from valid frames (HELLO, AUTH, CHANGE, CHECK) and flip bits, overwrite
bytes, cut, extend, lie in the length prefix, retag or repeat fields, or are random
bytes, from a seeded generator: a failure can be replayed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from adsync.ingest import handshake
from adsync.ingest.codec import (
    Auth,
    AuthOk,
    Challenge,
    ChangeMsg,
    Check,
    FrameSplitter,
    Hello,
    decode,
    encode,
)
from adsync.secret import Secret

FUZZ_PASSWORD = "Fuzz-Pässwort-€-1"  # noqa: S105 - the seed frames' password (tests register it)


def seed_frames() -> dict[str, bytes]:
    password = Secret(FUZZ_PASSWORD)
    return {
        "hello": encode(Hello(bytes(32), "fuzz/1"), 1),
        "auth": encode(Auth(bytes(32)), 2),
        "change": encode(
            ChangeMsg(
                account="fuzz",
                password=password,
                changed_at_ms=1_700_000_000_000,
                event_id=bytes(range(16)),
                domain="FUZZ",
                source_host="fuzzhost",
                rid=1234,
                object_guid=bytes(16),
                sequence=7,
            ),
            3,
        ),
        "check": encode(Check("fuzz", password, "Fuzz User", False, "FUZZ", "fuzzhost"), 4),
    }


def _mutate(frame: bytes, rng: random.Random) -> bytes:
    data = bytearray(frame)
    kind = rng.randrange(9)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # overwrite bytes
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:  # cut
        del data[rng.randrange(1, len(data)) :]
    elif kind == 3:  # extend with junk, length prefix kept or fixed
        data += rng.randbytes(rng.randint(1, 64))
        if rng.random() < 0.5:
            data[:4] = struct.pack(">I", len(data) - 4)
    elif kind == 4:  # lie in the length prefix
        data[:4] = struct.pack(
            ">I", rng.choice([0, 1, 15, 16, len(data) + 10, 65536, 65537, 2**32 - 1])
        )
    elif kind == 5 and len(data) > 20:  # retag the first field
        data[20] = rng.randrange(256)
    elif kind == 6 and len(data) > 20:  # repeat the fields (a repeated known tag)
        data += data[20:]
        data[:4] = struct.pack(">I", len(data) - 4)
    elif kind == 7:  # change type, version or flags in the header
        at = rng.choice([8, 9, 10, 11])
        data[at] = rng.randrange(256)
    else:  # random bytes with a plausible length
        body = rng.randbytes(rng.randint(0, 200))
        data = bytearray(struct.pack(">I", len(body)) + body)
    return bytes(data)


def mutated_frames(count: int, seed: int, kinds: tuple[str, ...]) -> list[bytes]:
    """``count`` mutated frames from the seed frames named in ``kinds``."""
    rng = random.Random(seed)  # noqa: S311 - seeded on purpose: a failure replays
    seeds = seed_frames()
    return [_mutate(seeds[rng.choice(kinds)], rng) for _ in range(count)]


def write_frames(path: Path, frames: list[bytes]) -> Path:
    """One hex frame per line (for ``HOSTILE``, which runs without adsync)."""
    path.write_text("".join(f.hex() + "\n" for f in frames))
    return path


# Run as: python3 -c HOSTILE HOST PORT HOLD FRAMES_FILE reopen|keep. Opens HOLD
# connections and keeps them (with "reopen", opening again any the daemon closes: a
# connection-rate flood), prints "ready", sends each frame of FRAMES_FILE on its own
# connection (reading until the daemon closes it or 2 s pass), prints "sent", then holds
# until its stdin closes; prints {"sent", "closed_by_daemon", "answered", …} as JSON.
HOSTILE = r"""
import json, selectors, socket, sys, time
host, port, hold, frames_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
reopen = sys.argv[5] == "reopen"
sel = selectors.DefaultSelector()
stats = {"sent": 0, "closed_by_daemon": 0, "answered": 0, "connect_errors": 0}
def connect():
    while True:
        try:
            s = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            stats["connect_errors"] += 1
            time.sleep(0.01)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, "held")
for _ in range(hold):
    connect()
sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
print("ready", flush=True)
def service(timeout):
    for key, _ in sel.select(timeout):
        if key.data == "stdin":
            return False
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            stats["closed_by_daemon"] += 1
            if reopen:
                connect()
    return True
with open(frames_file) as f:
    frames = [bytes.fromhex(line) for line in f if line.strip()]
for frame in frames:
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.sendall(frame)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            stats["answered"] += 1
    except OSError:
        pass
    finally:
        s.close()
    stats["sent"] += 1
    service(0)
print("sent", flush=True)
while service(None):
    pass
print(json.dumps(stats), flush=True)
"""


def authed_fuzz(
    frames: list[bytes], *, tcp: tuple[str, int] | None, psk: bytes | None, unix: str | None
) -> dict[str, int]:
    """Send each frame on its own connection: after a real handshake on TCP, or on the
    Unix socket (alternating when both are given). Counts what the daemon did."""
    stats = {"sent": 0, "handshake_failed": 0, "closed": 0}
    for i, frame in enumerate(frames):
        use_unix = unix is not None and (tcp is None or i % 2 == 0)
        try:
            if use_unix:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)
                sock.connect(str(unix))
            else:
                assert tcp is not None and psk is not None
                sock = socket.create_connection(tcp, timeout=10)
                if not _handshake(sock, psk):
                    stats["handshake_failed"] += 1
                    sock.close()
                    continue
            sock.sendall(frame)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
            stats["closed"] += 1
        except OSError:
            pass
        finally:
            sock.close()
        stats["sent"] += 1
    return stats


def _handshake(sock: socket.socket, psk: bytes) -> bool:
    splitter = FrameSplitter()
    client_nonce = handshake.new_nonce()
    sock.sendall(encode(Hello(client_nonce, "fuzz/1"), 1))
    challenge = _read_one(sock, splitter)
    if challenge is None:
        return False
    _rid, message = decode(challenge)
    if not isinstance(message, Challenge):
        return False
    proof = handshake.client_proof(psk, client_nonce, message.daemon_nonce)
    sock.sendall(encode(Auth(proof), 2))
    ok = _read_one(sock, splitter)
    return ok is not None and isinstance(decode(ok)[1], AuthOk)


def _read_one(sock: socket.socket, splitter: FrameSplitter) -> bytes | None:
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        payloads = splitter.feed(data)
        if payloads:
            return payloads[0]


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m adsync.testing.flood")
    parser.add_argument("mode", choices=["authed"])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tcp")
    parser.add_argument("--psk-file")
    parser.add_argument("--unix")
    args = parser.parse_args(argv)
    frames = mutated_frames(args.count, args.seed, ("change", "check", "change", "hello"))
    tcp = None
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        tcp = (host, int(port))
    psk = Path(args.psk_file).read_bytes() if args.psk_file else None
    started = time.monotonic()
    stats = authed_fuzz(frames, tcp=tcp, psk=psk, unix=args.unix)
    stats["seconds_x1000"] = int((time.monotonic() - started) * 1000)
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


def spawn_hostile(
    port: int, hold: int, frames_file: Path, *, reopen: bool = False, uid: int | None = None
) -> subprocess.Popen[str]:
    """``HOSTILE`` in a process of its own, as ``uid`` (needs root) with the system Python."""
    python = next(
        (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)),
        sys.executable,
    )
    mode = "reopen" if reopen else "keep"
    return subprocess.Popen(
        [python, "-c", HOSTILE, "127.0.0.1", str(port), str(hold), str(frames_file), mode],
        user=uid,
        group=uid,
        cwd="/",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
