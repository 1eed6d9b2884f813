"""Draining a backlog: the daemon against a plain aiohttp client, same target, one run.

    python bench/drain.py [--changes 20000] [--accounts 4000] [--concurrency 4] [--rounds 2]
    python bench/drain.py --changes 100000 --accounts 20000      # the issue's full size
    python bench/drain.py --memory [--changes 1000000]            # RSS with a queue that full

Drain: the daemon (one webhook backend, ``concurrency`` as given) takes ``--changes``
changes for ``--accounts`` accounts while nothing listens on the target's port (every
attempt is refused and retried after 0.25 s), then the target starts. Measured: from the
moment the target listens to the moment it has every account's final change. The plain
client POSTs the same finals (same bodies, same signature) to the same target at the same
concurrency. Rounds alternate the two; the ratio is plain time ÷ daemon time (1.0: the
daemon drains as fast as the target takes it). The target counts POSTs (equal to the
number of accounts when every older change was superseded) and changes that arrived
older than one it already had for that account (must be 0). CPU per final: the
daemon's user and system time (both threads) from the target's start to its last
final, and the plain client's process time; their ratio moves much less than wall
time when other work shares the machine. The daemon's is also split: its event loop's
thread against the others (the queue's sqlite thread); wall time above the loop's CPU
is time the loop waited (for a claim, an answer, or the GIL).

Memory: the target stays down (retries 1 h apart), ``--changes`` changes for as many
accounts are sent; the daemon's RSS (VmRSS, and VmHWM, its peak) is read idle, then
with everything queued and the lane settled.

Run it with another interpreter (``/path/to/main/.venv/bin/python bench/drain.py``) to
measure another checkout's daemon: the daemon runs under the interpreter that runs this.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adsync.backends.webhook.wire import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    change_body,
    signature,
)
from adsync.ingest.codec import AckReply, ChangeMsg, FrameSplitter, decode, encode
from adsync.ingest.wire import AckCode
from adsync.plugin import Change
from adsync.secret import Secret
from adsync.testing.daemon import DaemonProcess, base_config

SECRET = "bench-webhook-secret"  # the bench target's HMAC key
DOMAIN = "BENCH"

# --- the target (a subprocess) --------------------------------------------------------------


class Target:
    """Verifies each POST's signature; counts POSTs, finals and older-after-newer arrivals."""

    def __init__(self) -> None:
        self.reset({})

    def reset(self, finals: dict[str, str]) -> None:
        self.finals = finals  # account → changed_at of its last change
        self.latest: dict[str, str] = {}
        self.posts = 0
        self.older_after_newer = 0
        self.bad = 0
        self.finals_seen: set[str] = set()
        self.first_post_at: float | None = None
        self.done_at: float | None = None
        self.arrivals: dict[str, float] = {}  # event id → first arrival (bench/latency.py)

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = signature(SECRET.encode(), body)
        if not hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected):
            self.bad += 1
            return web.Response(status=401)
        data = json.loads(body)
        account, at = data["account"], data["changed_at"]
        self.posts += 1
        self.arrivals.setdefault(data["event_id"], time.monotonic())
        if self.first_post_at is None:
            self.first_post_at = time.monotonic()
        if at < self.latest.get(account, ""):
            self.older_after_newer += 1
        else:
            self.latest[account] = at
        if self.finals.get(account) == at and account not in self.finals_seen:
            self.finals_seen.add(account)
            if len(self.finals_seen) == len(self.finals):
                self.done_at = time.monotonic()
        return web.Response(status=204)

    async def control(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "posts": self.posts,
                "older_after_newer": self.older_after_newer,
                "bad": self.bad,
                "finals": len(self.finals_seen),
                "first_post_at": self.first_post_at,
                "done_at": self.done_at,
                "arrivals": self.arrivals if "arrivals" in request.query else None,
            }
        )


async def serve_target(port: int, finals: dict[str, str]) -> None:
    target = Target()
    target.reset(finals)
    app = web.Application()
    app.router.add_post("/hook", target.hook)
    app.router.add_get("/control", target.control)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"ready {time.monotonic()}", flush=True)
    await asyncio.Event().wait()


class TargetProcess:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.up_at = 0.0

    def start(self, finals: dict[str, str]) -> None:
        """Listen, knowing each account's final change from the first request on."""
        path = Path(tempfile.gettempdir()) / f"adsync-drain-finals-{self.port}.json"
        path.write_text(json.dumps(finals))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-target", str(self.port), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("the bench target did not start")
        self.up_at = float(line[1])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    async def stats(self, arrivals: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/control" + ("?arrivals" if arrivals else "")
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return dict(await response.json())


# --- the changes, the sources, the plain client ---------------------------------------------


def make_changes(count: int, accounts: int, round_no: int, prefix: str = "user") -> list[Change]:
    """Change i is for account i % accounts; later changes are newer (changed_at grows)."""
    base = int(time.time() * 1000) + round_no * 10 * count
    return [
        Change(
            event_id=os.urandom(16),
            account=f"{prefix}{i % accounts:07d}",
            password=Secret(f"Drain-Pässwort-{round_no}-{i}"),
            changed_at_ms=base + i,
            domain=DOMAIN,
        )
        for i in range(count)
    ]


def finals_of(changes: list[Change]) -> dict[str, Change]:
    return {c.account: c for c in changes}  # the last one per account wins


def frames(changes: list[Change], first_id: int) -> list[bytes]:
    return [
        encode(
            ChangeMsg(
                account=c.account,
                password=c.password,
                changed_at_ms=c.changed_at_ms,
                event_id=c.event_id,
                domain=c.domain,
            ),
            first_id + i,
        )
        for i, c in enumerate(changes)
    ]


async def send(path: str, all_frames: list[bytes], connections: int = 8, window: int = 64) -> None:
    """Send every frame over ``connections`` pipelined connections; each must be STORED.

    Frame i goes over connection i % connections: with ``accounts`` a multiple of
    ``connections`` every account's changes take one connection, in order, as a DC
    sends them (the queue orders an account's changes by arrival).
    """

    async def one(part: list[bytes]) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        splitter = FrameSplitter()
        slots = asyncio.Semaphore(window)
        remaining = len(part)

        async def acks() -> None:
            nonlocal remaining
            while remaining:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the daemon closed the connection")
                for payload in splitter.feed(data):
                    _, reply = decode(payload)
                    if not (isinstance(reply, AckReply) and reply.status == AckCode.STORED):
                        raise RuntimeError(f"not stored: {reply}")
                    remaining -= 1
                    slots.release()

        reading = asyncio.create_task(acks())
        for frame in part:
            await slots.acquire()
            writer.write(frame)
        await reading
        writer.close()

    await asyncio.gather(*(one(all_frames[c::connections]) for c in range(connections)))


async def plain_client(url: str, changes: list[Change], concurrency: int) -> None:
    """POST each change once, ``concurrency`` at a time: what the target alone allows."""
    key = SECRET.encode()
    todo = iter(changes)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for change in todo:
                body = change_body(change)
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature(key, body),
                    EVENT_ID_HEADER: change.event_id_hex,
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 204:
                        raise RuntimeError(f"target answered {response.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time of a process so far (a figure the machine's load hardly moves);
    with ``tid``, of that one thread (the process id is its main thread, the event loop's)."""
    stat = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(stat).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


# --- the runs -------------------------------------------------------------------------------


def daemon_config(work: Path, port: int, concurrency: int, backoff: str) -> dict[str, Any]:
    os.environ["ADSYNC_BENCH_SECRET"] = SECRET
    return base_config(
        work,
        {
            "hook": {
                "type": "webhook",
                "url": f"http://127.0.0.1:{port}/hook",
                "secret": "env:ADSYNC_BENCH_SECRET",
                "concurrency": concurrency,
                "timeout": "10s",
                "retry": {"backoff": {"initial": backoff, "max": backoff, "jitter": 0}},
            }
        },
        logging={"level": "info", "format": "json"},
        queue={"path": str(work / "queue.db"), "max_pending": 2_000_000},
    )


def daemon_round(
    daemon: DaemonProcess, target: TargetProcess, changes: list[Change], round_no: int
) -> tuple[float, dict[str, Any]]:
    finals = finals_of(changes)
    stamps = {a: c.changed_at_ms for a, c in finals.items()}
    asyncio.run(send(str(daemon.unix_socket), frames(changes, 1 + round_no * len(changes))))
    assert daemon.proc is not None
    target.start({a: _iso(ms) for a, ms in stamps.items()})
    pid = daemon.proc.pid
    cpu, loop_cpu = cpu_seconds(pid), cpu_seconds(pid, pid)
    started = target.up_at
    while True:
        stats = asyncio.run(target.stats())
        if stats["done_at"] is not None:
            break
        if time.monotonic() - started > 900 or (daemon.proc and daemon.proc.poll() is not None):
            raise RuntimeError(f"not drained: {stats}\n{daemon.log_tail()}")
        time.sleep(0.02)
    stats["cpu"] = cpu_seconds(pid) - cpu
    stats["loop_cpu"] = cpu_seconds(pid, pid) - loop_cpu
    # Let deliveries still running land (a POST of an older change would count).
    time.sleep(0.5)
    stats |= {k: v for k, v in asyncio.run(target.stats()).items() if k != "done_at"}
    target.stop()
    return stats["done_at"] - started, stats


def plain_round(
    target: TargetProcess, changes: list[Change], concurrency: int
) -> tuple[float, dict[str, Any]]:
    finals = finals_of(changes)
    target.start({a: _iso(c.changed_at_ms) for a, c in finals.items()})
    started, cpu = time.monotonic(), time.process_time()
    asyncio.run(plain_client(f"http://127.0.0.1:{target.port}/hook", list(finals.values()),
                             concurrency))  # fmt: skip
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    stats = asyncio.run(target.stats()) | {"cpu": cpu}
    target.stop()
    return elapsed, stats


def _iso(ms: int) -> str:
    from adsync.backends.webhook.wire import iso_utc_ms

    return iso_utc_ms(ms)


def drain(args: argparse.Namespace) -> None:
    if args.accounts % 8:
        raise SystemExit("--accounts must be a multiple of 8 (one connection per account)")
    with tempfile.TemporaryDirectory(prefix="adsync-drain-") as tmp:
        work = Path(tmp)
        port = free_port()
        target = TargetProcess(port)
        daemon = DaemonProcess(work, daemon_config(work, port, args.concurrency, "250ms"))
        daemon.start()
        times: dict[str, list[float]] = {"daemon": [], "plain": []}
        cpu: dict[str, list[float]] = {"daemon": [], "plain": [], "loop": []}
        try:
            for r in range(args.rounds):
                changes = make_changes(args.changes, args.accounts, r)
                elapsed, stats = daemon_round(daemon, target, changes, r)
                times["daemon"].append(elapsed)
                cpu["daemon"].append(stats["cpu"])
                cpu["loop"].append(stats["loop_cpu"])
                print(
                    f"round {r + 1} daemon: {elapsed:6.2f} s  CPU {stats['cpu']:5.2f} s "
                    f"(event loop {stats['loop_cpu']:5.2f} s)  "
                    f"POSTs {stats['posts']} "
                    f"(accounts {args.accounts})  older-after-newer {stats['older_after_newer']}"
                    f"  bad signatures {stats['bad']}",
                    flush=True,
                )
                elapsed, stats = plain_round(target, changes, args.concurrency)
                times["plain"].append(elapsed)
                cpu["plain"].append(stats["cpu"])
                print(f"round {r + 1} plain:  {elapsed:6.2f} s  CPU {stats['cpu']:5.2f} s  "
                      f"POSTs {stats['posts']}", flush=True)  # fmt: skip
        finally:
            target.stop()
            daemon.stop()
    d, p = statistics.median(times["daemon"]), statistics.median(times["plain"])
    print(
        f"cpus: {os.cpu_count()}  changes: {args.changes}  accounts: {args.accounts}  "
        f"concurrency: {args.concurrency}  rounds: {args.rounds}"
    )
    print(f"daemon drain {d:.2f} s ({args.accounts / d:.0f} finals/s), plain client {p:.2f} s "
          f"({args.accounts / p:.0f}/s)")  # fmt: skip
    print(f"ratio plain/daemon: {p / d:.2f}")
    dc, pc = statistics.median(cpu["daemon"]), statistics.median(cpu["plain"])
    per = 1e6 / args.accounts  # µs per final, from seconds per round
    print(f"CPU per final: daemon {dc * per:.0f} µs, plain client "
          f"{pc * per:.0f} µs (ratio {pc / dc:.2f}; steadier than wall time "
          "on a shared machine)")  # fmt: skip
    lc = statistics.median(cpu["loop"])
    print(f"daemon per final: event loop {lc * per:.0f} µs CPU, other threads (sqlite) "
          f"{(dc - lc) * per:.0f} µs, wall {d * per:.0f} µs (wall above the loop's CPU: the "
          "loop idle or waiting for the GIL)")  # fmt: skip


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="adsync-drain-mem-") as tmp:
        work = Path(tmp)
        daemon = DaemonProcess(work, daemon_config(work, free_port(), args.concurrency, "1h"))
        daemon.start()
        try:
            assert daemon.proc is not None
            time.sleep(1.0)
            idle = rss_kib(daemon.proc.pid)
            started = time.monotonic()
            step = 100_000
            for first in range(0, args.changes, step):
                n = min(step, args.changes - first)
                # One account per change: nothing is superseded, every password stays held.
                changes = make_changes(n, n, first // step, prefix=f"m{first // step}-")
                asyncio.run(send(str(daemon.unix_socket), frames(changes, 1 + first)))
                print(f"  {first + n} queued, RSS {rss_kib(daemon.proc.pid)['VmRSS'] / 1024:.0f} "
                      f"MiB", flush=True)  # fmt: skip
            ingest_s = time.monotonic() - started
            time.sleep(5.0)  # the lane's attempts (refused) settle
            full = rss_kib(daemon.proc.pid)
        finally:
            daemon.stop()
        size = (work / "queue.db").stat().st_size
    print(f"changes queued: {args.changes} in {ingest_s:.0f} s ({args.changes / ingest_s:.0f}/s)")
    print(f"RSS idle {idle['VmRSS'] / 1024:.0f} MiB; with every change queued "
          f"{full['VmRSS'] / 1024:.0f} MiB (peak {full['VmHWM'] / 1024:.0f} MiB)")  # fmt: skip
    print(f"queue file {size / 1e6:.0f} MB: {size / args.changes:.0f} bytes per change")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=None)
    parser.add_argument("--accounts", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="RSS with --changes queued")
    parser.add_argument("--serve-target", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_target:
        port, finals = args.serve_target
        asyncio.run(serve_target(int(port), json.loads(Path(finals).read_text())))
    elif args.memory:
        args.changes = args.changes or 1_000_000
        memory(args)
    else:
        args.changes = args.changes or 20_000
        drain(args)


if __name__ == "__main__":
    main()
