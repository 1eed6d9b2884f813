"""A well-behaved source's ACK latency with and without an attack, side by side in one run.

    python bench/flood.py [--changes 300] [--rounds 3] [--hold 1000] [--frames 5000]

``adsync run`` (Unix socket and loopback TCP, one webhook backend whose target is down:
ingest and the durable queue are measured) gets, in alternating rounds:

* quiet: a Unix source and an authenticated TCP source each send ``--changes`` CHANGEs,
  one at a time, timing each ACK;
* flood: the same, while another uid (``nobody`` when run as root) holds ``--hold`` TCP
  connections and sends half of ``--frames`` mutated frames before any handshake, and a
  root process with the key sends the other half after a real handshake and on the Unix
  socket (``adsync.testing.flood``). The sources keep sending until the attack is over.

Prints p50/p99 per transport and phase, and the ratio flood ÷ quiet. Every ACK must be 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from adsync.ingest.client import IngestClient
from adsync.ingest.psk import load_or_create_psk
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.flood import mutated_frames, spawn_hostile, write_frames

NOBODY = 65534


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Source(threading.Thread):
    def __init__(self, connect: object, at_least: int, stop: threading.Event) -> None:
        super().__init__()
        self.connect = connect
        self.at_least = at_least
        self.stop = stop
        self.latencies: list[float] = []
        self.bad = 0

    def run(self) -> None:
        with self.connect() as client:  # type: ignore[operator]
            while len(self.latencies) < self.at_least or not self.stop.is_set():
                started = time.perf_counter()
                ack = client.change(
                    account=f"bench{len(self.latencies) % 100}",
                    password=Secret("Bench-Flood-Pässwort-1"),
                    changed_at_ms=1_700_000_000_000,
                    event_id=os.urandom(16),
                )
                self.latencies.append(time.perf_counter() - started)
                self.bad += ack.status != 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phase(
    daemon: DaemonProcess, port: int, psk: bytes, args: argparse.Namespace, flood: bool
) -> dict[str, list[float]]:
    stop = threading.Event()
    sources = {
        "unix": Source(lambda: IngestClient.unix(daemon.unix_socket), args.changes, stop),
        "tcp": Source(lambda: IngestClient.tcp("127.0.0.1", port, psk), args.changes, stop),
    }
    attackers: list[subprocess.Popen[str]] = []
    shared = Path(tempfile.mkdtemp(prefix="adsync-bench-flood-"))
    os.chmod(shared, 0o755)
    try:
        if flood:
            frames = write_frames(
                shared / "frames.hex",
                mutated_frames(args.frames // 2, 13, ("hello", "auth", "change", "check")),
            )
            os.chmod(frames, 0o644)
            uid = NOBODY if os.geteuid() == 0 else None
            hostile = spawn_hostile(port, args.hold, frames, uid=uid)
            attackers.append(hostile)
            assert hostile.stdout is not None
            assert hostile.stdout.readline().strip() == "ready", hostile.stderr
            attackers.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "adsync.testing.flood", "authed"),
                        *("--count", str(args.frames - args.frames // 2), "--seed", "29"),
                        *("--tcp", f"127.0.0.1:{port}", "--unix", str(daemon.unix_socket)),
                        *("--psk-file", daemon.config["ingest"]["psk_file"]),
                    ],
                    stdout=subprocess.DEVNULL,
                    text=True,
                )
            )
        for source in sources.values():
            source.start()
        if flood:
            assert attackers[0].stdout is not None
            attackers[0].stdout.readline()  # "sent": its frames are through
            attackers[1].wait()
        stop.set()
        for source in sources.values():
            source.join()
    finally:
        stop.set()
        for proc in attackers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for path in shared.iterdir():
            path.unlink()
        shared.rmdir()
    for name, source in sources.items():
        if source.bad:
            raise SystemExit(f"{name}: {source.bad} changes not ACKed 0")
    return {name: source.latencies for name, source in sources.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adsync-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        os.environ.setdefault("ADSYNC_BENCH_FLOOD_KEY", "bench-flood-webhook-key")
        parked = {  # nobody listens on port 9: changes are ACKed and stay queued
            "type": "webhook",
            "url": "http://127.0.0.1:9/hook",
            "secret": "env:ADSYNC_BENCH_FLOOD_KEY",
        }
        config = base_config(
            work,
            {"parked": parked},
            ingest={"tcp": f"127.0.0.1:{port}", "allowed_uids": [0, os.getuid()]},
            logging={"level": "warning", "format": "json"},
        )
        daemon = DaemonProcess(work, config)
        daemon.start()
        try:
            psk = load_or_create_psk(Path(config["ingest"]["psk_file"]))
            results: dict[str, dict[str, list[float]]] = {"quiet": {}, "flood": {}}
            for _ in range(args.rounds):
                for name, flood in (("quiet", False), ("flood", True)):
                    for transport, values in phase(daemon, port, psk, args, flood).items():
                        results[name].setdefault(transport, []).extend(values)
        finally:
            daemon.stop()
    attacker = "nobody" if os.geteuid() == 0 else "this uid"
    print(
        f"flood: {args.hold} held TCP connections ({attacker}) + {args.frames} mutated frames; "
        f"{args.rounds} rounds alternating quiet/flood"
    )
    print(f"{'source':<6} {'phase':<6} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for transport in ("unix", "tcp"):
        for name in ("quiet", "flood"):
            values = results[name][transport]
            print(
                f"{transport:<6} {name:<6} {len(values):>6} "
                f"{percentile(values, 0.5) * 1e3:>8.2f} {percentile(values, 0.99) * 1e3:>8.2f}"
            )
        calm, busy = results["quiet"][transport], results["flood"][transport]
        print(
            f"{transport:<6} ratio flood/quiet: p50 "
            f"{statistics.median(busy) / statistics.median(calm):.2f}x, p99 "
            f"{percentile(busy, 0.99) / percentile(calm, 0.99):.2f}x"
        )


if __name__ == "__main__":
    main()
