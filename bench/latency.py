"""Change→delivered latency, paced, against a bare socket→POST forwarder, in one run.

    python bench/latency.py [--rates 50,200,500,1000] [--seconds 10] [--concurrency 4]

For each rate, changes are sent one by one at that pace over one Unix-socket connection
(new accounts, so nothing is superseded); the target (bench/drain.py's, a subprocess)
notes when each event first arrives. Latency = arrival - send, both on the machine's
monotonic clock. The forwarder is the least a daemon must do: read a frame, ACK it,
POST the change's webhook body with one aiohttp session at the same concurrency; no
storage. Rates alternate between the two. Printed per rate: p50/p99 of each, the ratio
of the p50s, the p50 of the first and the last third of the run (stable: equal), and
each side's CPU time per change (user + system, from the first send to the last arrival):
a figure the machine's other load moves much less than latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from adsync.backends.webhook.wire import EVENT_ID_HEADER, SIGNATURE_HEADER, change_body, signature
from adsync.ingest.codec import AckReply, ChangeMsg, FrameSplitter, decode, encode
from adsync.ingest.wire import AckCode
from adsync.plugin import Change
from adsync.testing.daemon import DaemonProcess

sys.path.insert(0, str(Path(__file__).parent))
from drain import (  # the sibling bench: its target and change maker
    SECRET,
    TargetProcess,
    cpu_seconds,
    daemon_config,
    free_port,
    make_changes,
)

# --- the bare forwarder (a subprocess) ------------------------------------------------------


async def forward(socket_path: str, url: str, concurrency: int) -> None:
    key = SECRET.encode()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    slots = asyncio.Semaphore(concurrency)

    async def post(change: Change) -> None:
        async with slots:
            body = change_body(change)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(key, body),
                EVENT_ID_HEADER: change.event_id_hex,
            }
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        splitter = FrameSplitter()
        while data := await reader.read(65536):
            for payload in splitter.feed(data):
                request_id, msg = decode(payload)
                writer.write(encode(AckReply(AckCode.STORED), request_id))
                assert isinstance(msg, ChangeMsg)
                change = Change(
                    event_id=msg.event_id,
                    account=msg.account,
                    password=msg.password,
                    changed_at_ms=msg.changed_at_ms,
                    domain=msg.domain,
                )
                asyncio.get_running_loop().create_task(post(change))

    server = await asyncio.start_unix_server(connection, path=socket_path)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# --- the paced source -----------------------------------------------------------------------


async def paced(path: str, changes: list[Change], rate: float) -> dict[str, float]:
    """Send each change at its time; returns event id → send time (monotonic)."""
    reader, writer = await asyncio.open_unix_connection(path)
    splitter = FrameSplitter()
    sent: dict[str, float] = {}

    async def acks() -> None:
        got = 0
        while got < len(changes):
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed")
            got += len(splitter.feed(data))

    reading = asyncio.create_task(acks())
    start = time.monotonic()
    for i, c in enumerate(changes):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        msg = ChangeMsg(
            account=c.account,
            password=c.password,
            changed_at_ms=c.changed_at_ms,
            event_id=c.event_id,
            domain=c.domain,
        )
        sent[c.event_id_hex] = time.monotonic()
        writer.write(encode(msg, i + 1))
    await reading
    writer.close()
    return sent


async def measure(
    path: str, target: TargetProcess, changes: list[Change], rate: float
) -> list[float]:
    sent = await paced(path, changes, rate)
    deadline = time.monotonic() + 120
    while True:
        stats = await target.stats(arrivals=True)
        arrivals = stats["arrivals"]
        if all(e in arrivals for e in sent) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return [arrivals[e] - t for e, t in sent.items() if e in arrivals]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,200,500,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--forward", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.forward:
        sock, url, conc = args.forward
        asyncio.run(forward(sock, url, int(conc)))
        return
    with tempfile.TemporaryDirectory(prefix="adsync-latency-") as tmp:
        work = Path(tmp)
        port = free_port()
        target = TargetProcess(port)
        target.start({})
        url = f"http://127.0.0.1:{port}/hook"
        fsock = str(work / "forward.sock")
        forwarder = subprocess.Popen(
            [sys.executable, __file__, "--forward", fsock, url, str(args.concurrency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert forwarder.stdout is not None and forwarder.stdout.readline().strip() == "ready"
        daemon = DaemonProcess(work, daemon_config(work, port, args.concurrency, "250ms"))
        daemon.start()
        print(f"cpus: {os.cpu_count()}  seconds per rate: {args.seconds}  "
              f"concurrency: {args.concurrency}")  # fmt: skip
        try:
            for n, rate in enumerate(float(r) for r in args.rates.split(",")):
                count = int(rate * args.seconds)
                row, cpu = {}, {}
                pids = {"bare": forwarder.pid, "daemon": daemon.proc.pid if daemon.proc else 0}
                for name, path in (("bare", fsock), ("daemon", str(daemon.unix_socket))):
                    changes = make_changes(count, count, n, prefix=f"{name}{n}-")
                    used = cpu_seconds(pids[name])
                    row[name] = asyncio.run(measure(path, target, changes, rate))
                    cpu[name] = (cpu_seconds(pids[name]) - used) / count * 1e6
                d, b = row["daemon"], row["bare"]
                third = max(1, len(d) // 3)
                print(
                    f"{rate:6.0f}/s  bare p50 {pct(b, 0.5):7.2f} ms p99 {pct(b, 0.99):7.2f} ms"
                    f"  daemon p50 {pct(d, 0.5):7.2f} ms p99 {pct(d, 0.99):7.2f} ms"
                    f"  ratio p50 {pct(d, 0.5) / pct(b, 0.5):5.1f}"
                    f"  daemon p50 first/last third {pct(d[:third], 0.5):.1f}/"
                    f"{pct(d[-third:], 0.5):.1f} ms  delivered {len(d)}/{count}"
                    f"  CPU per change daemon {cpu['daemon']:.0f} µs, bare {cpu['bare']:.0f} µs",
                    flush=True,
                )
        finally:
            daemon.stop()
            forwarder.terminate()
            forwarder.wait()
            target.stop()


if __name__ == "__main__":
    main()
