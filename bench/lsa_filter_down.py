"""PasswordFilter latency of adsyncflt.dll under wine while the daemon is down and its port
refuses slowly (a listener with a full accept queue: the SYN is dropped, as a Windows
client's SYN retries make a refused loopback connect take ~2 s).

    python bench/lsa_filter_down.py [--checks 200] [--rounds 3] [--deadline-ms 2000]

Two conditions in one run, rounds alternating: the daemon up (a protocol-faithful fake
answering every CHECK at once) and the daemon down with the slow refusal (the worker has
found out; PasswordFilter must answer OnUndecided without spending DeadlineMs). Prints
p50/p99/max of both, the ratio of the p99s, and fails (exit 1) when the down p99 is not
far below the deadline (under a tenth of it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "native"))

from lsa_fakedaemon import FakeDaemon  # noqa: E402
from lsa_filter_notify import build, check_initialized, percentile  # noqa: E402
from lsa_safety import SlowRefusal  # noqa: E402
from lsa_wine import Harness, WinePrefix, winpath, write_checks  # noqa: E402


def prepare(work: Path, psk: bytes, checks: int) -> tuple[Path, Path]:
    work.mkdir(parents=True, mode=0o700)  # the DLL refuses a key others could read or plant
    key = work / "filter.key"
    key.write_bytes(psk)
    key.chmod(0o600)
    rows = [(i % 4 == 0, f"bench{i:03d}", "", f"Bench-Check-Pw-{i:04d}") for i in range(checks)]
    return key, write_checks(work / "k.txt", rows)


def log_text(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def one_round(
    wine: WinePrefix, work: Path, psk: bytes, up: bool, checks: int, deadline_ms: int
) -> list[int]:
    key, check_file = prepare(work, psk, checks)
    server: FakeDaemon | SlowRefusal = FakeDaemon(psk, verdict=0) if up else SlowRefusal()
    log = work / "filter.log"
    try:
        wine.set_filter_settings(
            {
                "Port": server.port,
                "KeyFile": winpath(key),
                "SpoolDir": winpath(work / "spool"),
                "LogFile": winpath(log),
                "LogLevel": "warning",
                "DeadlineMs": deadline_ms,
                "ConnectTimeoutMs": 1000,
                "BackoffInitialMs": 200,
                "BackoffMaxMs": 1000,
            }
        )
        h = Harness(wine, work)
        go = work / "go"
        await h.start("init", "wait", winpath(go), "60", "filter", winpath(check_file))
        if not up:  # let the worker find out, as it would long before a user's change
            end = time.monotonic() + 30
            while "connect_failed" not in log_text(log):
                if time.monotonic() > end:
                    raise RuntimeError(f"the worker never reported the daemon down; see {work}")
                await asyncio.sleep(0.1)
        go.write_text("go")
        rc = await h.wait(timeout=600)
        if rc != 0:
            raise RuntimeError(f"harness exited with {rc}; see {work}")
        check_initialized(h, work)
        ns = [n for _, n in h.filter_results()]
        if len(ns) != checks:
            raise RuntimeError(f"harness timed {len(ns)} of {checks} calls")
        return ns
    finally:
        server.close()


async def measure(args: argparse.Namespace) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory(prefix="lsa-bench-down-") as tmp:
        wine = WinePrefix(Path(tmp))
        wine.start()
        try:
            psk = os.urandom(32)
            results: dict[str, list[int]] = {"up": [], "down": []}
            for r in range(args.rounds):
                for cond in ("up", "down"):
                    work = Path(tmp) / f"r{r}-{cond}"
                    results[cond] += await one_round(
                        wine, work, psk, cond == "up", args.checks, args.deadline_ms
                    )
        finally:
            wine.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checks", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deadline-ms", type=int, default=2000)
    args = ap.parse_args()
    if not build():
        return 1
    results = asyncio.run(measure(args))
    p99 = {}
    print(f"PasswordFilter under wine, {args.rounds} x {args.checks} calls per condition")
    for cond, ns in results.items():
        ns.sort()
        p99[cond] = percentile(ns, 0.99)
        label = "up (CHECK answered)" if cond == "up" else "down (slow refusal)"
        print(
            f"  daemon {label:20s}: p50 {percentile(ns, 0.50):9.1f} us   "
            f"p99 {p99[cond]:9.1f} us   max {ns[-1] / 1000:9.1f} us"
        )
    print(f"  p99 down/up ratio: {p99['down'] / max(p99['up'], 0.001):.2e}")
    ok = p99["down"] < args.deadline_ms * 1000 / 10
    print(
        f"  DeadlineMs {args.deadline_ms}: down p99 is "
        f"{p99['down'] / (args.deadline_ms * 1000) * 100:.3f} % of it ({'ok' if ok else 'NOT ok'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
