"""Collapsing concurrent misses: waiters wake when the fetch ends, or give up in time."""

from __future__ import annotations

import asyncio

from edge.cache.flights import Flights


async def test_one_flight_per_key_and_its_waiters_wake_when_it_ends() -> None:
    flights = Flights()
    flight = flights.start("k")
    assert flight is not None and flights.get("k") is flight
    assert flights.start("k") is None  # in flight already
    waiters = [asyncio.create_task(flight.wait(5)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flight.end()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert flights.get("k") is None and len(flights) == 0
    flight.end()  # idempotent
    again = flights.start("k")
    assert again is not None and again is not flight


async def test_a_waiter_gives_up_after_its_time() -> None:
    flights = Flights()
    flight = flights.start("k")
    assert flight is not None
    assert await flight.wait(0.01) is False
    assert not flight.done and flights.get("k") is flight


async def test_an_ended_flight_does_not_forget_its_successor() -> None:
    flights = Flights()
    first = flights.start("k")
    assert first is not None
    first.end()
    second = flights.start("k")
    first.end()  # late second call: must not drop the new flight
    assert flights.get("k") is second
    assert await first.wait(0) is True
