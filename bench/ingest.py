"""Durable ACK throughput and latency of the daemon, against a bare server that ACKs
without storing: same client, same frames, same machine, in one run.

    python bench/ingest.py [--changes 20000] [--connections 8] [--window 64] [--rounds 3]

Both servers run as subprocesses on Unix sockets. The bare server splits and
decodes every frame with the same codec and answers ACK 0 at once; the daemon
commits each change (group commit, synchronous=FULL) with one webhook backend
whose target is down (the burst case: every change stays queued). Rounds
alternate between the two servers; medians are printed, with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adsync.ingest.codec import AckReply, ChangeMsg, FrameSplitter, decode, encode
from adsync.ingest.wire import AckCode
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config

# --- the bare server ------------------------------------------------------------------------


async def _bare_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    splitter = FrameSplitter()
    while data := await reader.read(65536):
        replies = []
        for payload in splitter.feed(data):
            request_id, _ = decode(payload)
            replies.append(encode(AckReply(AckCode.STORED), request_id))
        writer.write(b"".join(replies))
        await writer.drain()
    writer.close()


async def serve_bare(path: str) -> None:
    server = await asyncio.start_unix_server(_bare_connection, path=path)
    async with server:
        await server.serve_forever()


# --- the client -----------------------------------------------------------------------------


def make_frames(count: int, start: int) -> list[bytes]:
    password = Secret("Bench-Pässwörd€1")
    now = int(time.time() * 1000)
    return [
        encode(
            ChangeMsg(
                account=f"user{(start + i) % 5000}",
                password=password,
                changed_at_ms=now,
                event_id=os.urandom(16),
                domain="BENCH",
            ),
            start + i,
        )
        for i in range(count)
    ]


async def _pipeline(path: str, frames: list[bytes], window: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    splitter = FrameSplitter()
    sent_at: dict[int, float] = {}
    slots = asyncio.Semaphore(window)
    done = asyncio.Event()
    remaining = len(frames)

    async def read_acks() -> None:
        nonlocal remaining
        while remaining:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            for payload in splitter.feed(data):
                request_id, reply = decode(payload)
                assert isinstance(reply, AckReply) and reply.status == AckCode.STORED, reply
                latencies.append(time.perf_counter() - sent_at.pop(request_id))
                remaining -= 1
                slots.release()
        done.set()

    acks = asyncio.create_task(read_acks())
    for frame in frames:
        await slots.acquire()
        sent_at[int.from_bytes(frame[12:20], "big")] = time.perf_counter()
        writer.write(frame)
    await asyncio.wait([acks, asyncio.create_task(done.wait())], return_when="FIRST_EXCEPTION")
    acks.result()
    writer.close()


async def burst(
    path: str, changes: int, connections: int, window: int
) -> tuple[float, list[float]]:
    per = changes // connections
    batches = [make_frames(per, 1 + c * per) for c in range(connections)]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_pipeline(path, b, window, latencies) for b in batches))
    elapsed = time.perf_counter() - started
    return per * connections / elapsed, latencies


async def paced(path: str, rate: float, seconds: float, connections: int) -> list[float]:
    """Open-loop: each connection sends at rate/connections, one request at a time in flight
    or more (window large enough never to throttle)."""
    count = int(rate * seconds / connections)
    batches = [make_frames(count, 10_000_000 + c * count) for c in range(connections)]
    latencies: list[float] = []

    async def one(frames: list[bytes]) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        splitter = FrameSplitter()
        sent_at: dict[int, float] = {}
        interval = connections / rate

        async def read_acks() -> None:
            got = 0
            while got < len(frames):
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                for payload in splitter.feed(data):
                    request_id, _ = decode(payload)
                    latencies.append(time.perf_counter() - sent_at.pop(request_id))
                    got += 1

        acks = asyncio.create_task(read_acks())
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[int.from_bytes(frame[12:20], "big")] = time.perf_counter()
            writer.write(frame)
        await acks
        writer.close()

    await asyncio.gather(*(one(b) for b in batches))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=64, help="pipelined requests per connection")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2000.0, help="offered changes/s for latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the paced phase")
    parser.add_argument("--serve-bare", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        asyncio.run(serve_bare(args.serve_bare))
        return

    with tempfile.TemporaryDirectory(prefix="adsync-bench-") as tmp:
        work = Path(tmp)
        bare_path = str(work / "bare.sock")
        bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", bare_path])
        config = base_config(
            work,
            {
                "down": {
                    "type": "webhook",
                    "url": "http://127.0.0.1:9/never",  # discard port: nothing listens
                    "secret": "env:ADSYNC_BENCH_SECRET",
                    "retry": {"backoff": {"initial": "1h", "max": "1h"}},
                }
            },
            logging={"level": "warning", "format": "json"},
        )
        os.environ["ADSYNC_BENCH_SECRET"] = "bench-webhook-secret"
        daemon = DaemonProcess(work, config)
        daemon.start()
        try:
            while not Path(bare_path).exists():
                time.sleep(0.05)
            servers = {"bare": bare_path, "durable": str(daemon.unix_socket)}
            rates: dict[str, list[float]] = {"bare": [], "durable": []}
            burst_lat: dict[str, list[float]] = {"bare": [], "durable": []}
            for _ in range(args.rounds):
                for name, path in servers.items():
                    rate, lat = asyncio.run(
                        burst(path, args.changes, args.connections, args.window)
                    )
                    rates[name].append(rate)
                    burst_lat[name].extend(lat)
            paced_lat = {
                name: asyncio.run(paced(path, args.rate, args.seconds, args.connections))
                for name, path in servers.items()
            }
        finally:
            daemon.stop()
            bare.terminate()
            bare.wait()

    bare_rate = statistics.median(rates["bare"])
    durable_rate = statistics.median(rates["durable"])
    print(
        f"cpus: {os.cpu_count()}  changes/round: {args.changes}  connections: "
        f"{args.connections}  window: {args.window}  rounds: {args.rounds}"
    )
    for name in ("bare", "durable"):
        print(
            f"{name:8} burst: {statistics.median(rates[name]):9.0f} changes/s "
            f"(rounds: {', '.join(f'{r:.0f}' for r in rates[name])})  "
            f"ACK latency p50 {pct(burst_lat[name], 0.5):.2f} ms "
            f"p99 {pct(burst_lat[name], 0.99):.2f} ms"
        )
    for name in ("bare", "durable"):
        print(
            f"{name:8} paced at {args.rate:.0f}/s: "
            f"ACK latency p50 {pct(paced_lat[name], 0.5):.2f} ms"
            f"  p99 {pct(paced_lat[name], 0.99):.2f} ms  ({len(paced_lat[name])} changes)"
        )
    print(f"ratio durable/bare throughput: {durable_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
