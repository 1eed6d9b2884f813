"""Three targets at once, one down for the whole test: the other two deliver everything.

The durations with and without the third target down are printed and recorded as
test properties, never asserted (timing belongs to bench/targets_isolation.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from adsync.queue.models import DeliveryState

from .conftest import Kit, Rig, StartDaemon, eventually, new_password

pytestmark = pytest.mark.slow

ACCOUNTS = [f"user{i:02d}" for i in range(50)]
HEALTHY = ("soffid", "scim")
THIRD = "oim_spml"


async def run(
    mode: str, kits: dict[str, Kit], fakes: Any, start_daemon: StartDaemon
) -> tuple[float, Rig, Any]:
    """50 changes for 50 users; seconds until both healthy targets have all of them."""
    healthy = {name: await fakes(kits[name].fake(ACCOUNTS)) for name in HEALTHY}
    third = await fakes(kits[THIRD].fake(ACCOUNTS))
    if mode == "refused":
        await third.go_down()
    elif mode == "hanging":
        third.stall()
    backends = {name: kits[name].backend(fake) for name, fake in healthy.items()}
    backends[THIRD] = kits[THIRD].backend(third, timeout="1s")
    rig = await start_daemon(backends)
    items = [(account, new_password("bulk"), None) for account in ACCOUNTS]
    wanted = {account: pw.sha for account, pw, _ in items}

    def got(name: str) -> dict[str | None, str | None]:
        return {r.account: r.password_sha256 for r in kits[name].password_requests(healthy[name])}

    async def all_there() -> bool:
        return all(len(got(name)) == len(ACCOUNTS) for name in HEALTHY)

    started = time.monotonic()
    await rig.send_many(items)
    await eventually(all_there, f"both healthy targets have all 50 ({mode})", within=120)
    elapsed = time.monotonic() - started
    for name in HEALTHY:
        assert got(name) == wanted, f"{name} did not get exactly the 50 passwords"
    return elapsed, rig, third


async def test_a_down_target_holds_up_neither_of_the_other_two(
    kits: dict[str, Kit],
    fakes: Any,
    start_daemon: StartDaemon,
    record_property: Any,
) -> None:
    durations: dict[str, float] = {}
    for mode in ("up", "refused", "hanging"):
        elapsed, rig, third = await run(mode, kits, fakes, start_daemon)
        durations[mode] = elapsed
        rows = await rig.rows(THIRD)
        assert len(rows) == len(ACCOUNTS)
        if mode == "up":
            await eventually(
                lambda rig=rig: _all_delivered(rig), "the third target delivered too", 120
            )
        else:
            assert not kits[THIRD].password_requests(third), "the down target got a password"
            assert all(r.state is not DeliveryState.DELIVERED for r in rows)
            assert all(r.rejections == 0 and r.password_held for r in rows)
        await rig.stop()  # an idle daemon left running would only compete for the CPU
    for mode, seconds in durations.items():
        record_property(f"seconds_{mode}", round(seconds, 3))
    print(
        "\nisolation: 50 changes to soffid+scim with oim_spml "
        + ", ".join(f"{mode}: {seconds:.2f}s" for mode, seconds in durations.items())
    )


async def _all_delivered(rig: Rig) -> bool:
    rows = await rig.rows(THIRD)
    return len(rows) == len(ACCOUNTS) and all(r.state is DeliveryState.DELIVERED for r in rows)
