"""The lane asks the delivery gate first: an out-of-scope change never reaches the plugin."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from adsync.clock import FakeClock
from adsync.directory.gate import DeliveryGate
from adsync.dispatch.dispatcher import Dispatcher
from adsync.plugin import Backend, BackendConfig, Change, Outcome, ScopeConfig, Secret
from adsync.queue.models import DeliveryState
from adsync.queue.store import Queue


class Recording(Backend[BackendConfig]):
    def __init__(self, name: str, config: BackendConfig) -> None:
        super().__init__(name, config)
        self.accounts: list[str] = []

    async def deliver(self, change: Change) -> Outcome:
        self.accounts.append(change.account)
        return Outcome.delivered()


class Exploding:
    async def admit(self, scope: ScopeConfig, change: Change) -> Outcome | None:
        raise RuntimeError("bug")


async def settle(queue: Queue, n: int) -> dict[str, tuple[str, str | None]]:
    for _ in range(2000):
        rows = await queue.list_deliveries()
        active = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)
        if len(rows) == n and all(r.state not in active for r in rows):
            return {f"{r.backend}/{r.account}": (r.state.value, r.last_error) for r in rows}
        await asyncio.sleep(0.005)
    raise AssertionError("not settled")


async def test_skipped_changes_never_reach_the_plugin(
    open_queue: Callable[[Sequence[str]], Awaitable[Queue]],
    clock: FakeClock,
    cleanup: list[Callable[[], Awaitable[None]]],
) -> None:
    queue = await open_queue(["hr", "all"])
    cleanup.append(queue.close)
    hr_cfg = BackendConfig(type="fake", scope=ScopeConfig(exclude_accounts=("svc-*",)))
    all_cfg = BackendConfig(type="fake")
    hr, everyone = Recording("hr", hr_cfg), Recording("all", all_cfg)
    lanes: dict[str, tuple[Any, BackendConfig]] = {"hr": (hr, hr_cfg), "all": (everyone, all_cfg)}
    dispatcher = Dispatcher(queue, lanes, clock, random=lambda: 0.5, gate=DeliveryGate())
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    for account in ("alice", "svc-backup", "krbtgt"):
        await queue.append_many([Change(os.urandom(16), account, Secret("Pw-scope-lane-1"), 0)])
    table = await settle(queue, 6)
    assert hr.accounts == ["alice"]
    assert everyone.accounts == ["alice", "svc-backup"]
    assert table["hr/svc-backup"] == ("skipped", "exclude_accounts svc-*")
    assert table["hr/krbtgt"] == ("skipped", "built-in exclusion krbtgt")
    assert table["all/krbtgt"] == ("skipped", "built-in exclusion krbtgt")
    assert table["all/svc-backup"] == ("delivered", "")


async def test_a_gate_that_raises_is_an_unreachable_attempt(
    open_queue: Callable[[Sequence[str]], Awaitable[Queue]],
    clock: FakeClock,
    cleanup: list[Callable[[], Awaitable[None]]],
) -> None:
    queue = await open_queue(["hr"])
    cleanup.append(queue.close)
    cfg = BackendConfig(type="fake")
    backend = Recording("hr", cfg)
    gate: Any = Exploding()
    dispatcher = Dispatcher(queue, {"hr": (backend, cfg)}, clock, random=lambda: 0.5, gate=gate)
    await dispatcher.start()
    cleanup.append(lambda: dispatcher.stop(0))
    await queue.append_many([Change(os.urandom(16), "alice", Secret("Pw-scope-lane-2"), 0)])
    for _ in range(2000):
        [row] = await queue.list_deliveries() or [None]
        if row is not None and row.attempts == 1:
            break
        await asyncio.sleep(0.005)
    assert row is not None and row.state is DeliveryState.PENDING
    assert (row.last_outcome, row.last_error) == (
        "unreachable",
        "directory check raised RuntimeError",
    )
    assert backend.accounts == []
