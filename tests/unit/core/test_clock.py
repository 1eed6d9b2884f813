"""The clocks' timers (``Clock.call_later``): what the lane's timed wait relies on."""

from __future__ import annotations

import asyncio

from adsync.clock import FakeClock, SystemClock


async def test_a_fake_timer_fires_when_the_clock_passes_it_and_is_counted_until_then() -> None:
    clock, fired = FakeClock(), []
    clock.call_later(5.0, lambda: fired.append("a"))
    assert clock.sleepers == 1
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert fired == []
    clock.advance(0.1)
    await asyncio.sleep(0)
    assert fired == ["a"] and clock.sleepers == 0


async def test_a_cancelled_fake_timer_never_fires() -> None:
    clock, fired = FakeClock(), []
    clock.call_later(1.0, lambda: fired.append("a")).cancel()
    assert clock.sleepers == 0
    clock.advance(2.0)
    await asyncio.sleep(0)
    assert fired == []


async def test_a_fake_timer_due_now_fires_on_the_next_turn_of_the_loop() -> None:
    clock, fired = FakeClock(), []
    clock.call_later(0.0, lambda: fired.append("a"))
    await asyncio.sleep(0)
    assert fired == ["a"]


async def test_the_system_timer_fires_and_a_cancelled_one_does_not() -> None:
    clock, fired = SystemClock(), []
    clock.call_later(0.01, lambda: fired.append("a"))
    clock.call_later(0.01, lambda: fired.append("b")).cancel()
    await asyncio.sleep(0.05)
    assert fired == ["a"]
