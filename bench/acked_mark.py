"""What ``<db>.acked`` costs an append, measured side by side in one run.

    python bench/acked_mark.py [--appends 300] [--rounds 7] [--batch 1]

One queue per variant, in one process, on real files (synchronous=FULL); rounds
alternate between them, medians are printed with the ratio to ``none``:

* ``none``   — the mark's writer detached (what the ACK path costs without it);
* ``shipped`` — ``MarkWriter`` as the daemon runs it: each count written at once
  (page cache), fdatasync at most once per ``SYNC_INTERVAL``;
* ``eager``  — the same with an fdatasync after every commit (the rejected design).

``--batch 1`` is the worst case: one change per commit, so one WAL flush per ACK.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from adsync.plugin import Change
from adsync.queue.highwater import MarkWriter
from adsync.queue.keys import FileKeyProvider
from adsync.queue.store import Queue
from adsync.secret import Secret


class EagerMark(MarkWriter):
    SYNC_INTERVAL = 0.0


def change(i: int) -> Change:
    return Change(
        event_id=os.urandom(16),
        account=f"user{i % 5000}",
        password=Secret("Bench-Pässwörd€1"),
        changed_at_ms=1_700_000_000_000 + i,
        domain="BENCH",
    )


async def open_variant(work: Path, name: str) -> Queue:
    db = work / name / "queue.db"
    db.parent.mkdir()
    queue = await Queue.open(db, FileKeyProvider(work / "master.key"), ["a"], max_pending=10**9)
    mark = queue._mark
    assert mark is not None
    await asyncio.to_thread(mark.close)
    queue._mark = (
        None
        if name == "none"
        else (EagerMark if name == "eager" else MarkWriter)(db, queue._appended)
    )
    return queue


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=300, help="commits per round")
    parser.add_argument("--batch", type=int, default=1, help="changes per commit")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    names = ("none", "shipped", "eager")
    rates: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="adsync-mark-", dir=".") as tmp:
        queues = {n: await open_variant(Path(tmp), n) for n in names}
        try:
            n = 0
            for r in range(args.rounds):
                for name in names[r % 3 :] + names[: r % 3]:
                    started = time.perf_counter()
                    for _ in range(args.appends):
                        await queues[name].append_many([change(n + j) for j in range(args.batch)])
                        n += args.batch
                    rates[name].append(args.appends / (time.perf_counter() - started))
        finally:
            for q in queues.values():
                await q.close()
    base = statistics.median(rates["none"])
    print(f"commits/round: {args.appends}  changes/commit: {args.batch}  rounds: {args.rounds}")
    for name in names:
        med = statistics.median(rates[name])
        spread = ", ".join(f"{x:.0f}" for x in rates[name])
        print(f"{name:8} {med:7.0f} commits/s  ratio to none {med / base:.2f}  ({spread})")


if __name__ == "__main__":
    asyncio.run(main())
