"""Does a down target slow down the healthy ones? Three backends in one daemon (Soffid,
SCIM, OIM SPML); OIM is up, refusing connections, or hanging; we time how long the two
healthy targets take to receive every change, in one run on one machine.

    python bench/targets_isolation.py [--changes 200] [--rounds 3]

Each round starts a fresh daemon (``adsync run`` subprocess) per mode, with the fakes
in this process on 127.0.0.1; modes alternate within a round so machine noise hits
them alike. Medians are printed with the ratios down/up (1.0 = no added delay).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from adsync.ingest.client import IngestClient, change_message
from adsync.secret import Secret
from adsync.testing.contract import FakeTarget
from adsync.testing.daemon import DaemonProcess, base_config
from adsync.testing.oim import FakeOim
from adsync.testing.scim import FakeScim
from adsync.testing.soffid import FakeSoffid

MODES = ("up", "refused", "hanging")
AGENT = "AD adsync.bench"
RETRY = {"backoff": {"initial": "100ms", "max": "1s", "factor": 2, "jitter": 0.1}}


def secret_file(folder: Path, name: str, value: str) -> str:
    path = folder / name
    path.write_text(value)
    path.chmod(0o600)
    return f"file:{path}"


async def one_run(mode: str, changes: int, work: Path) -> float:
    accounts = [f"user{i:05d}" for i in range(changes)]
    soffid = FakeSoffid(agent=AGENT, accounts=set(accounts))
    scim = FakeScim(users=accounts, token="bench-scim-token")
    oim = FakeOim(password="bench-oim", users={a: str(i) for i, a in enumerate(accounts)})
    fakes: list[FakeTarget] = [soffid, scim, oim]
    for fake in fakes:
        await fake.__aenter__()
    if mode == "refused":
        await oim.go_down()
    elif mode == "hanging":
        oim.stall()
    backends: dict[str, Any] = {
        "soffid": {"type": "soffid", "url": soffid.url, "agent": AGENT, "retry": RETRY},
        "scim": {
            "type": "scim",
            "url": scim.base_url,
            "token": secret_file(work, "scim.secret", "bench-scim-token"),
            "retry": RETRY,
        },
        "oim": {
            "type": "oim_spml",
            "url": oim.endpoint,
            "username": "xelsysadm",
            "password": secret_file(work, "oim.secret", "bench-oim"),
            "match_attribute": "Users.User ID",
            "timeout": "2s",
            "retry": RETRY,
        },
    }
    daemon = DaemonProcess(
        work,
        base_config(
            work,
            backends,
            logging={"level": "info", "format": "json"},
            dispatch={"shutdown_grace": "500ms"},
        ),
    )
    await asyncio.to_thread(daemon.start)
    try:
        now = int(time.time() * 1000)
        password = Secret("Bench-Pässwörd€1")
        messages = [
            change_message(account=a, password=password, changed_at_ms=now, event_id=os.urandom(16))
            for a in accounts
        ]

        def send() -> None:
            with IngestClient.unix(daemon.unix_socket, timeout=60) as client:
                acks = client.pipeline_changes(messages)
            assert all(a.status == 0 for a in acks)

        started = time.monotonic()
        await asyncio.to_thread(send)
        while True:
            got_soffid = {r.account for r in soffid.received if r.operation == "propagate"}
            got_scim = {r.account for r in scim.received if r.operation == "patch"}
            if len(got_soffid) == changes and len(got_scim) == changes:
                return time.monotonic() - started
            if time.monotonic() - started > 600:
                raise RuntimeError(f"not delivered within 600s ({mode})")
            await asyncio.sleep(0.01)
    finally:
        await asyncio.to_thread(daemon.stop, 30)
        for fake in fakes:
            await fake.__aexit__(None, None, None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # The hanging fake's handlers see their clients give up: expected, not worth a traceback.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="adsync-bench-") as tmp:
        for round_no in range(args.rounds):
            order = MODES[round_no % 3 :] + MODES[: round_no % 3]
            for mode in order:
                work = Path(tmp) / f"r{round_no}-{mode}"
                work.mkdir()
                seconds = await one_run(mode, args.changes, work)
                times[mode].append(seconds)
                print(f"round {round_no + 1} {mode:8} {seconds:7.3f}s", flush=True)
    up = statistics.median(times["up"])
    print(f"\n{args.changes} changes to soffid + scim, median of {args.rounds} rounds:")
    for mode in MODES:
        median = statistics.median(times[mode])
        print(f"  oim {mode:8} {median:7.3f}s  ratio to up: {median / up:5.2f}")


if __name__ == "__main__":
    asyncio.run(main())
