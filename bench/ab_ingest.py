"""The ACK path of this tree against a baseline tree, side by side in one run.

    git -C /work/main archive main src | tar -x -C /tmp/base    # the baseline's src/
    python bench/ab_ingest.py --base /tmp/base/src [--rounds 5]

Two daemons run at once, one from ``--base`` (its ``src`` directory first on
PYTHONPATH), one from this tree, each with one webhook backend whose target is
down (every change stays queued). Rounds alternate between them, so both see the
same machine load; medians are printed with the ratio this/base. Workloads:
``burst`` (8 connections x 64 pipelined: group commit), ``serial`` (one
connection, one change at a time: one commit per change, where a per-commit
cost shows most) and ``paced`` (open loop at a fixed rate: ACK latency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ingest import burst, paced, pct

from adsync.testing.daemon import DaemonProcess, base_config


class BaseDaemon(DaemonProcess):
    """The daemon from another source tree."""

    src = ""

    def command(self) -> list[str]:
        return ["env", f"PYTHONPATH={self.src}", *super().command()]


def make(work: Path, cls: type[DaemonProcess]) -> DaemonProcess:
    work.mkdir()
    backend = {
        "type": "webhook",
        "url": "http://127.0.0.1:9/never",  # discard port: nothing listens
        "secret": "env:ADSYNC_BENCH_SECRET",
        "retry": {"backoff": {"initial": "1h", "max": "1h"}},
    }
    config = base_config(work, {"down": backend}, logging={"level": "warning", "format": "json"})
    return cls(work, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the baseline's src directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--changes", type=int, default=8000, help="per burst round")
    parser.add_argument("--serial", type=int, default=400, help="changes per serial round")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    BaseDaemon.src = str(Path(args.base).resolve())
    os.environ["ADSYNC_BENCH_SECRET"] = "bench-webhook-secret"

    names = ("base", "this")
    burst_rate: dict[str, list[float]] = {n: [] for n in names}
    burst_lat: dict[str, list[float]] = {n: [] for n in names}
    serial_rate: dict[str, list[float]] = {n: [] for n in names}
    serial_lat: dict[str, list[float]] = {n: [] for n in names}
    paced_lat: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="adsync-ab-") as tmp:
        daemons = {"base": make(Path(tmp) / "base", BaseDaemon)}
        daemons["this"] = make(Path(tmp) / "this", DaemonProcess)
        for d in daemons.values():
            d.start()
        try:
            for r in range(args.rounds):
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    path = str(daemons[name].unix_socket)
                    rate, lat = asyncio.run(burst(path, args.changes, 8, 64))
                    burst_rate[name].append(rate)
                    burst_lat[name].extend(lat)
                    started = time.perf_counter()
                    lat = asyncio.run(burst(path, args.serial, 1, 1))[1]
                    serial_rate[name].append(args.serial / (time.perf_counter() - started))
                    serial_lat[name].extend(lat)
                    paced_lat[name].extend(
                        asyncio.run(paced(path, args.rate, args.seconds / args.rounds, 4))
                    )
        finally:
            for d in daemons.values():
                d.stop()

    print(f"cpus: {os.cpu_count()}  rounds: {args.rounds}  (alternating; medians)")
    for name in names:
        print(
            f"{name:5} burst {statistics.median(burst_rate[name]):7.0f}/s "
            f"p50 {pct(burst_lat[name], 0.5):6.2f} ms p99 {pct(burst_lat[name], 0.99):6.2f} ms | "
            f"serial {statistics.median(serial_rate[name]):6.0f}/s "
            f"p50 {pct(serial_lat[name], 0.5):5.2f} ms p99 {pct(serial_lat[name], 0.99):5.2f} ms | "
            f"paced {args.rate:.0f}/s p50 {pct(paced_lat[name], 0.5):5.2f} ms "
            f"p99 {pct(paced_lat[name], 0.99):6.2f} ms"
        )
    b, t = (statistics.median(burst_rate[n]) for n in names)
    sb, st = (statistics.median(serial_rate[n]) for n in names)
    print(f"ratio this/base: burst throughput {t / b:.2f}, serial throughput {st / sb:.2f}")


if __name__ == "__main__":
    main()
