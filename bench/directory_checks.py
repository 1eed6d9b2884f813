"""Cost of the scope and stale-password checks per delivery: warm directory cache vs no
``directory:`` at all, side by side in one run, on a real Samba AD DC.

    python bench/directory_checks.py [--users 20] [--rounds 10] [--repeats 3]

Both modes run the real queue (SQLite, fsync), the real dispatcher and lanes, and a
backend that answers ``delivered`` at once (so the checks are what differs):

* ``none``: no ``directory:``; the gate applies the built-in exclusions and an account
  glob (what a daemon without the section does);
* ``warm``: the directory is the DC (ldapi, simple bind), scope ``include_groups`` (nested
  membership) + ``exclude_ous``, the stale guard on, the cache warm (TTL 1 h).

Each round stores one change per user and waits until every delivery is done; the
figure is wall time per delivery. Modes alternate; medians and their ratio are printed.
Also printed: the cost of one ``DeliveryGate.admit`` alone in each mode (µs).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import structlog

from adsync.clock import SystemClock
from adsync.config import DirectoryConfig
from adsync.directory.captures import CaptureBook
from adsync.directory.client import DirectoryClient
from adsync.directory.gate import DeliveryGate
from adsync.dispatch.dispatcher import Dispatcher
from adsync.plugin import Backend, BackendConfig, Change, Outcome, ScopeConfig, Secret
from adsync.queue.keys import FileKeyProvider
from adsync.queue.models import DeliveryState
from adsync.queue.store import Queue
from adsync.testing.samba_dc import ADMIN_PASSWORD, SambaDC, SambaTemplate, base_dn

BASE = base_dn()


class Instant(Backend[BackendConfig]):
    async def deliver(self, change: Change) -> Outcome:
        return Outcome.delivered()


def scopes(users: int) -> dict[str, ScopeConfig]:
    return {
        "none": ScopeConfig(exclude_accounts=("svc-*",)),
        "warm": ScopeConfig(
            include_groups=("Bench users",),
            exclude_ous=(f"OU=Nobody,{BASE}",),
            exclude_accounts=("svc-*",),
        ),
    }


async def run_mode(
    mode: str, work: Path, users: list[str], rounds: int, directory: DirectoryClient | None
) -> list[float]:
    """Seconds per delivery, one figure per round."""
    clock = SystemClock()
    keys = FileKeyProvider(work / "master.key")
    queue = await Queue.open(work / f"{mode}.db", keys, ["b"], max_pending=10**6, clock=clock)
    captures = CaptureBook(queue, directory, clock)
    gate = DeliveryGate(directory, captures, budget=5.0)
    config = BackendConfig(type="instant", concurrency=8, scope=scopes(len(users))[mode])
    dispatcher = Dispatcher(queue, {"b": (Instant("b", config), config)}, clock, gate=gate)
    await dispatcher.start()
    figures = []
    try:
        for done_rounds in range(1, rounds + 1):
            changes = [
                Change(uuid.uuid4().bytes, u, Secret("Bench-Pässwörd€1"), int(time.time() * 1000))
                for u in users
            ]
            started = time.perf_counter()
            captures.expect(changes)
            appended = await queue.append_many(changes)
            assert all(a.status.value == "stored" for a in appended), appended
            captures.on_stored(changes, [True] * len(changes))
            # Until every row of the round is delivered (Queue.status() reads its counts in
            # one call on the sqlite thread: a consistent snapshot between the lanes' writes).
            while True:
                counts = (await queue.status()).counts.get("b", {})
                if counts.get("delivered", 0) >= done_rounds * len(users):
                    break
                await asyncio.sleep(0.001)
            figures.append((time.perf_counter() - started) / len(users))
        counts = (await queue.status()).counts.get("b", {})
        done = counts.get(DeliveryState.DELIVERED.value, 0)
        assert done == rounds * len(users), f"{mode}: {done} delivered ({counts})"
    finally:
        await dispatcher.stop(5.0)
        await captures.close()
        await queue.close()
    return figures


async def admit_cost(gate: DeliveryGate, scope: ScopeConfig, users: list[str], n: int) -> float:
    changes = [Change(uuid.uuid4().bytes, u, Secret("x"), 0) for u in users]
    started = time.perf_counter()
    for i in range(n):
        verdict = await gate.admit(scope, changes[i % len(changes)])
        assert verdict is None, verdict
    return (time.perf_counter() - started) / n * 1e6


async def main(args: argparse.Namespace, dc: SambaDC, users: list[str]) -> None:
    secret = dc.root / "bench.secret"
    secret.write_text(ADMIN_PASSWORD)
    config = DirectoryConfig(
        url=f"ldapi://{dc.target}/private/ldap_priv/ldapi",
        bind_dn=f"CN=Administrator,CN=Users,{BASE}",
        bind_password=f"file:{secret}",
        cache_ttl=3600,
    )
    directory = DirectoryClient(config)
    for user in users:  # warm the cache
        await directory.lookup(user, ("Bench users",))
    results: dict[str, list[float]] = {"none": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="adsync-bench-") as tmp:
        for repeat in range(args.repeats):
            for mode in ("none", "warm"):
                work = Path(tmp) / f"{mode}-{repeat}"
                work.mkdir()
                results[mode] += await run_mode(
                    mode, work, users, args.rounds, directory if mode == "warm" else None
                )
    none_us = statistics.median(results["none"]) * 1e6
    warm_us = statistics.median(results["warm"]) * 1e6
    print(f"users {len(users)}, rounds {args.rounds} x {args.repeats}")
    print(f"per delivery, no directory:         {none_us:8.1f} µs (median)")
    print(f"per delivery, directory, warm cache: {warm_us:8.1f} µs (median)")
    print(f"ratio warm / none:                   {warm_us / none_us:8.2f}")
    s = scopes(len(users))

    class _Fixed:
        async def captured(self, event_id: bytes) -> Any:
            return None

    gate_none = DeliveryGate()
    gate_warm = DeliveryGate(directory, _Fixed(), budget=5.0)
    a = await admit_cost(gate_none, s["none"], users, 20000)
    b = await admit_cost(gate_warm, s["warm"], users, 20000)
    print(f"DeliveryGate.admit alone: none {a:.1f} µs, warm {b:.1f} µs (ratio {b / a:.1f})")
    print(
        f"directory: {directory.stats.searches} searches, {directory.stats.cache_hits} cache hits"
    )
    await directory.close()


def setup(users: int) -> tuple[SambaTemplate, SambaDC, list[str]]:
    template = SambaTemplate.provision()
    dc = SambaDC(template)
    dc.start()
    names = [f"bench{i:03d}" for i in range(users)]
    dc.samba_tool("group", "add", "Bench users")
    dc.samba_tool("group", "add", "Bench team")
    dc.samba_tool("group", "addmembers", "Bench users", "Bench team")
    for name in names:
        dc.samba_tool("user", "create", name, f"Bench-{os.urandom(6).hex()}-Pw1")
    dc.samba_tool("group", "addmembers", "Bench team", ",".join(names))
    return template, dc, names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    template, dc, names = setup(ns.users)
    try:
        asyncio.run(main(ns, dc, names))
    finally:
        dc.destroy()
        template.remove()
