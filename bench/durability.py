"""Every crash point of the durability workload, not a sample (tests/durability/ runs a sample).

    .venv/bin/python bench/durability.py                 # every commit and sync boundary
    .venv/bin/python bench/durability.py --sample 20     # a seeded sample of each
    .venv/bin/python bench/durability.py --only power --modes ext4,posix
    .venv/bin/python bench/durability.py --only kill --shard 2/3   # every third commit from 2

Prints, per kind of crash: cut points tried, changes ACKed before the cut (summed), ACKed
changes lost (must be 0), older-after-newer deliveries (must be 0), and duplicate deliveries
(at-least-once: a delivery whose outcome was not yet durable is repeated after the restart).
Exit code 1 when anything was lost or regressed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.durability.kill_runs import (  # noqa: E402
    Outcome,
    Recording,
    commit_kill,
    count_commits,
    pick,
    power_cuts,
    record,
    sync_boundaries,
)


def lost(outcome: Outcome) -> int:
    """ACKed changes the restart did not deliver (per target and account)."""
    return sum(map(len, outcome.verdict.missing.values()))


def progress(outcome: Outcome) -> None:
    """One line per cut on stderr, so a long run that is stopped still shows what it tried."""
    v = outcome.verdict
    print(
        f"  {outcome.point}: ACKed {outcome.acked}, lost {lost(outcome)}, "
        f"older-after-newer {len(v.older_after_newer)}, duplicates {v.duplicates}",
        file=sys.stderr,
        flush=True,
    )


def report(kind: str, outcomes: list[Outcome], seconds: float) -> bool:
    lost_total = sum(map(lost, outcomes))
    regressions = sum(len(o.verdict.older_after_newer) for o in outcomes)
    duplicates = sum(o.verdict.duplicates for o in outcomes)
    with_dupes = sum(1 for o in outcomes if o.verdict.duplicates)
    recovered = sorted({o.recovered_by for o in outcomes if o.recovered_by})
    print(
        f"{kind}: {len(outcomes)} cut points in {seconds:.0f}s, "
        f"{sum(o.acked for o in outcomes)} ACKed changes before the cuts, lost {lost_total}, "
        f"older-after-newer {regressions}, duplicates {duplicates} (at {with_dupes} cuts)"
    )
    for step in recovered:
        print(f"  restart needed the documented step: {step}")
    for o in outcomes:
        if not o.verdict.ok:
            print(f"  FAILED at {o.point}: {o.verdict.summary()}")
    return lost_total == 0 and regressions == 0


async def recorded(tmp: Path, keep: str | None) -> Recording:
    """The power-cut workload's recording: made here, or shared through ``keep`` (made by
    the first shard that finds none there; start the others once its JSON exists)."""
    if keep is None:
        return await record(tmp)
    saved = Path(keep) / "recording.json"
    if saved.exists():
        return Recording.load(saved)
    recording = await record(Path(keep))
    recording.save(saved)
    return recording


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=None, help="cut points of each kind")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--only", choices=["kill", "power"], default=None)
    parser.add_argument("--modes", default="ext4,posix", help="power-cut namespace models")
    parser.add_argument(
        "--recording",
        default=None,
        help="DIR: record the power-cut workload there once, "
        "and let --shard K/N processes share it (each cuts every Nth sync boundary)",
    )
    parser.add_argument(
        "--numbers", default="1-", help="LO-HI: only commit numbers in this range (kill runs)"
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        help="K/N: only every Nth commit number (kill runs) or sync boundary (power cuts, "
        "with --recording) from the Kth; a run mostly waits, so N processes side by side "
        "finish sooner",
    )
    args = parser.parse_args()
    k, _, n = args.shard.partition("/")
    shard, shards = int(k), int(n)
    lo_text, _, hi_text = args.numbers.partition("-")
    lo, hi = int(lo_text or 1), int(hi_text) if hi_text else None
    # A target whose client was killed mid-request is the point here, not news.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    ok = True
    with tempfile.TemporaryDirectory(prefix="adsync-durability-") as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "kill"):
            started = time.monotonic()
            total = await count_commits(tmp)
            numbers = pick(list(range(1, total + 1)), args.sample, args.seed)
            numbers = [n for n in numbers if lo <= n and (hi is None or n <= hi)][shard::shards]
            outcomes = []
            for number in numbers:
                for before in (True, False):
                    outcomes.append(await commit_kill(tmp, number, before=before))
                    progress(outcomes[-1])
            print(f"workload commits: {total}", flush=True)
            ok &= report("SIGKILL at commit boundaries", outcomes, time.monotonic() - started)
        if args.only in (None, "power"):
            started = time.monotonic()
            recording = await recorded(tmp, args.recording)
            points = sync_boundaries(recording)
            chosen = pick(points, args.sample, args.seed)[shard::shards]
            print(
                f"workload sync boundaries: {len(points)}, ACKed {len(recording.ledger.acked)}",
                flush=True,
            )
            for mode in args.modes.split(","):
                outcomes = await power_cuts(tmp, recording, chosen, mode=mode, progress=progress)
                ok &= report(f"power cut ({mode})", outcomes, time.monotonic() - started)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
