"""CPU per delivered change, split by thread: a real queue and lane, in this process.

    python bench/lane_cpu.py [--changes 20000] [--accounts 4000] [--backend null|webhook]
                             [--trace-sql]

``--changes`` changes for ``--accounts`` accounts are appended to a fresh queue file
(nothing delivers meanwhile), then one lane drains them: with ``null`` the backend
answers at once (what the lane, the queue and the log line cost), with ``webhook`` the
real webhook backend POSTs to bench/drain.py's target (a subprocess). Printed per
round: CPU per final of the event-loop thread and of the sqlite thread (from
``/proc/self/task``), wall time per final, and commits per final. The JSON log goes to
/dev/null at info, as the daemon's would go to a file. Linux only (``/proc``).

``--trace-sql`` also prints, per kind of statement run during the drain, the sqlite
thread's CPU per final and the mean wall time from the statement's start to the next
one's (a trace callback on the queue's connection): where that thread's time goes, the
GIL waits of each step included. A COMMIT's span also holds the thread's idle time until
the next transaction, so read its CPU, not its wall time.

Why this and not a profiler: py-spy's samples of a busy event loop put weight on small
frames (7% on a 2.5 µs timestamp function); per-thread CPU around a whole drain, with
one part taken away at a time, says what each part costs (bench/README.md, "Third pass").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from adsync.clock import SystemClock
from adsync.dispatch.dispatcher import Dispatcher
from adsync.observe.logs import configure_logging
from adsync.plugin import Backend, BackendConfig, Change, Outcome
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.secret import Secret


class AnswersAtOnce(Backend[BackendConfig]):
    """Delivered after one turn of the loop: the lane's own cost, no HTTP."""

    config_model: ClassVar[type[BackendConfig]] = BackendConfig

    async def deliver(self, change: Change) -> Outcome:
        await asyncio.sleep(0)
        return Outcome.delivered("HTTP 204")


def thread_cpu() -> dict[int, float]:
    """User + system CPU seconds of each thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        stat = Path(f"/proc/self/task/{tid}/stat").read_text().rpartition(")")[2].split()
        out[int(tid)] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return out


class SqlTrace:
    """Statement starts on the sqlite thread: (wall clock, thread CPU, first words)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float, str]] = []

    def __call__(self, statement: str) -> None:  # sqlite3's trace callback, on that thread
        self.marks.append((time.perf_counter(), time.thread_time(), " ".join(statement.split())))

    def report(self, finals: int) -> None:
        spans: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        pairs = zip(self.marks, self.marks[1:], strict=False)  # each start with the next one
        for (wall, cpu, text), (next_wall, next_cpu, _) in pairs:
            span = spans[text[:44]]
            span[0] += 1
            span[1] += next_wall - wall
            span[2] += next_cpu - cpu
        for text, (count, wall, cpu) in sorted(spans.items(), key=lambda kv: -kv[1][2])[:8]:
            print(f"    {cpu / finals * 1e6:5.1f} µs CPU per final, {count:5d} x, "
                  f"{wall / count * 1e6:6.0f} µs wall each: {text}")  # fmt: skip


async def backend_for(kind: str, concurrency: int) -> tuple[Backend[Any], BackendConfig, Any]:
    if kind == "null":
        config = BackendConfig(type="null", concurrency=concurrency)
        return AnswersAtOnce("hook", config), config, None
    from drain import SECRET, TargetProcess, free_port  # bench/drain.py, beside this file

    from adsync.backends.webhook import WebhookBackend
    from adsync.backends.webhook.config import WebhookConfig

    target = TargetProcess(free_port())
    target.start({})
    os.environ["ADSYNC_BENCH_SECRET"] = SECRET
    webhook = WebhookConfig(
        type="webhook",
        url=f"http://127.0.0.1:{target.port}/hook",
        secret="env:ADSYNC_BENCH_SECRET",
        concurrency=concurrency,
    )
    backend = WebhookBackend("hook", webhook)
    await backend.start()
    return backend, webhook, target


async def one_round(args: argparse.Namespace, round_no: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="adsync-lane-cpu-"))
    queue = await Queue.open(
        work / "queue.db", FileKeyProvider(work / "master.key"), ["hook"], max_pending=10**7
    )
    base = int(time.time() * 1000)
    changes = [
        Change(
            event_id=os.urandom(16),
            account=f"user{i % args.accounts:07d}",
            password=Secret(f"Lane-Pässwort-{round_no}-{i}"),
            changed_at_ms=base + i,
            domain="BENCH",
        )
        for i in range(args.changes)
    ]
    for first in range(0, len(changes), 500):
        await queue.append_many(changes[first : first + 500])
    del changes
    backend, config, target = await backend_for(args.backend, args.concurrency)
    dispatcher = Dispatcher(queue, {"hook": (backend, config)}, SystemClock())
    lane = dispatcher.lanes["hook"]
    loop_thread = os.getpid()  # the main thread's id is the process id
    trace = SqlTrace() if args.trace_sql else None
    if trace is not None:
        await queue.read(lambda conn: conn.set_trace_callback(trace))
    before, commits, started = thread_cpu(), queue.commits, time.perf_counter()
    await dispatcher.start()
    while lane.delivered < args.accounts:  # noqa: ASYNC110 - a counter, no event to wait on
        await asyncio.sleep(0.005)
    wall = time.perf_counter() - started
    after = thread_cpu()
    if trace is not None:
        await queue.read(lambda conn: conn.set_trace_callback(None))
    await dispatcher.stop(0)
    await backend.close()
    if target is not None:
        target.stop()
    await queue.close()
    shutil.rmtree(work)  # the queue file and key of this round
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    per = 1e6 / args.accounts
    loop_cpu = used.pop(loop_thread, 0.0)
    print(
        f"round {round_no + 1}: event loop {loop_cpu * per:5.0f} µs, other threads "
        f"{sum(used.values()) * per:5.0f} µs (sqlite), wall {wall * per:5.0f} µs per final; "
        f"commits per final {(queue.commits - commits) / args.accounts:.3f}",
        flush=True,
    )
    if trace is not None:
        trace.report(args.accounts)


async def rounds(args: argparse.Namespace) -> None:
    for round_no in range(args.rounds):
        await one_round(args, round_no)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--accounts", type=int, default=4_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=("null", "webhook"), default="null")
    parser.add_argument("--trace-sql", action="store_true", help="time each kind of statement")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  changes: {args.changes}  accounts: {args.accounts}  "
          f"concurrency: {args.concurrency}  backend: {args.backend}")  # fmt: skip
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        configure_logging("info", "json", devnull)
        asyncio.run(rounds(args))


if __name__ == "__main__":
    main()
