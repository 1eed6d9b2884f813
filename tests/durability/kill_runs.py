"""The two crash runs the tests and bench/durability.py share: a SIGKILL at a commit boundary,
and a power cut at a sync boundary replayed from the I/O log."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adsync.queue.crashpoint import COUNT_ENV, CRASH_ENV
from adsync.testing.daemon import DaemonProcess
from adsync.testing.leaks import REGISTRY

from .harness import (
    Acked,
    Ledger,
    Targets,
    Verdict,
    config_for,
    judge,
    start,
    wait_delivered,
    workload,
)
from .syncfs import build_shim, cuts, read_log, shim_env, sync_points


@dataclass
class Outcome:
    point: str
    acked: int
    verdict: Verdict
    recovered_by: str = ""  # a documented operator step the restart needed, if any


async def _drain(
    work: Path, data: Path, ledger: Ledger, wanted: dict[str, int]
) -> tuple[Targets, DaemonProcess, str]:
    """Restart on ``data`` with every target accepting; wait for ``wanted``."""
    targets = Targets()
    await targets.__aenter__()
    targets.behave()
    daemon = DaemonProcess(work, config_for(work, data, targets))
    step = ""
    if not await asyncio.to_thread(start, daemon):
        if (data / "master.key.new").exists():
            # docs/operations.md: an interrupted `keys rotate --master` is finished by
            # running it again.
            step = "keys rotate --master (finish the interrupted rotation)"
            await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "adsync",
                    "keys",
                    "rotate",
                    "--master",
                    "--config",
                    str(daemon.config_path),
                ],
                capture_output=True,
                timeout=60,
            )
        if not await asyncio.to_thread(start, daemon):
            await targets.__aexit__(None, None, None)
            raise AssertionError(f"the daemon does not start after the crash:\n{daemon.log_tail()}")
    await wait_delivered(targets, wanted, ledger.versions, daemon)
    return targets, daemon, step


async def count_commits(tmp: Path) -> int:
    """Run the workload once with the commit counter on; the number of commits it made."""
    count_file = tmp / "commits"
    work = tmp / "count"
    work.mkdir()
    async with Targets() as targets:
        targets.misbehave()
        daemon = DaemonProcess(work, config_for(work, work / "data", targets))
        (work / "data").mkdir()
        assert await asyncio.to_thread(start, daemon, {COUNT_ENV: str(count_file)})
        await asyncio.to_thread(workload, daemon, Ledger(run="count"))
        await asyncio.to_thread(daemon.kill)
    return int(count_file.read_text())


async def commit_kill(tmp: Path, number: int, *, before: bool) -> Outcome:
    """SIGKILL right before/after commit ``number`` of the workload, restart, drain, judge."""
    point = f"commit {number} {'before' if before else 'after'}"
    work = tmp / f"kill-{number}-{'b' if before else 'a'}"
    data = work / "data"
    data.mkdir(parents=True)
    ledger = Ledger(run=f"k{number}{'b' if before else 'a'}")
    async with Targets() as targets:
        targets.misbehave()
        daemon = DaemonProcess(work, config_for(work, data, targets))
        hook = {CRASH_ENV: f"{number}:{'before' if before else 'after'}"}
        if await asyncio.to_thread(start, daemon, hook):
            await asyncio.to_thread(workload, daemon, ledger)
        await asyncio.to_thread(daemon.kill)  # past the last commit: a crash at the end
        live = {n: [d.password_sha256 for d in t.deliveries] for n, t in targets.by_name.items()}
    wanted = ledger.newest_acked()
    fresh, daemon, step = await _drain(work, data, ledger, wanted)
    try:
        histories = {
            n: live[n] + [d.password_sha256 for d in t.deliveries] for n, t in fresh.by_name.items()
        }
    finally:
        await asyncio.to_thread(daemon.stop, 30)
        await fresh.__aexit__(None, None, None)
    return Outcome(point, len(ledger.acked), judge(histories, wanted, ledger.versions), step)


@dataclass
class Recording:
    ledger: Ledger
    log: Path
    data: Path
    live: dict[str, list[tuple[str, int]]]  # target → (digest, t_ns) accepted

    def save(self, path: Path) -> None:
        """As JSON (digests, names and times: no password), for bench shards to share."""
        ledger = self.ledger
        path.write_text(
            json.dumps(
                {
                    "run": ledger.run,
                    "versions": ledger.versions,
                    "acked": [[a.account, a.version, a.t_ns] for a in ledger.acked],
                    "log": str(self.log),
                    "data": str(self.data),
                    "live": self.live,
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> Recording:
        saved = json.loads(path.read_text())
        ledger = Ledger(
            run=saved["run"],
            versions={d: (a, v) for d, (a, v) in saved["versions"].items()},
            acked=[Acked(a, v, t) for a, v, t in saved["acked"]],
        )
        live = {n: [(d, t) for d, t in stamps] for n, stamps in saved["live"].items()}
        return cls(ledger, Path(saved["log"]), Path(saved["data"]), live)


async def record(tmp: Path) -> Recording:
    """One workload with every write, sync and rename under the data directory recorded."""
    shim = build_shim(tmp)
    work = tmp / "recorded"
    data = work / "data"
    data.mkdir(parents=True)
    log = REGISTRY.watch(tmp / "io.log")  # every byte the daemon wrote: no password in it
    env = shim_env(shim, data, log)
    ledger = Ledger(run="power")
    async with Targets() as targets:
        targets.misbehave()
        daemon = DaemonProcess(work, config_for(work, data, targets))
        assert await asyncio.to_thread(start, daemon, env), daemon.log_tail()
        await asyncio.to_thread(workload, daemon, ledger, env)
        await asyncio.to_thread(daemon.kill)
        live = {n: list(t.stamps) for n, t in targets.by_name.items()}
    return Recording(ledger, log, data, live)


def pick(points: list[int], sample: int | None, seed: int) -> list[int]:
    if sample is None or sample >= len(points):
        return points
    return sorted(random.Random(seed).sample(points, sample))


async def power_cuts(
    tmp: Path,
    recording: Recording,
    at: list[int],
    *,
    mode: str = "ext4",
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Replay a power cut right after each sync record in ``at``; judge each restart."""
    records = read_log(recording.log)
    results = []
    for cut in cuts(records, recording.data, at, mode=mode):
        work = tmp / f"cut-{mode}-{cut.index}"
        data = work / "data"
        cut.materialize(data)
        for shm in data.glob("*-shm"):  # shared memory, rebuilt from the WAL on open
            shm.unlink()
        wanted = recording.ledger.newest_acked(before_ns=cut.t_ns)
        fresh, daemon, step = await _drain(work, data, recording.ledger, wanted)
        try:
            histories = {
                n: [d for d, t in recording.live[n] if t < cut.t_ns]
                + [d.password_sha256 for d in fresh.by_name[n].deliveries]
                for n in fresh.by_name
            }
        finally:
            await asyncio.to_thread(daemon.stop, 30)
            await fresh.__aexit__(None, None, None)
        acked = sum(1 for a in recording.ledger.acked if a.t_ns < cut.t_ns)
        verdict = judge(histories, wanted, recording.ledger.versions)
        results.append(Outcome(f"{mode} sync #{cut.index}", acked, verdict, step))
        if progress is not None:
            progress(results[-1])
    return results


def sync_boundaries(recording: Recording) -> list[int]:
    return sync_points(read_log(recording.log))
