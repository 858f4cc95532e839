"""Fetches in flight per key, so that concurrent misses of one resource wait for one fetch
(request collapsing: nginx's ``proxy_cache_lock``, Varnish's waiting list).

The first request that misses a key fetches it and holds the key's
:class:`Flight`; requests missing the same key meanwhile wait for it, each at
most the route's ``lock_timeout``, then look again: they are served what the
fetch stored, or, when it stored nothing (the answer could not be stored, the
fetch failed, the wait timed out), fetch for themselves. The fetch ends its
flight as soon as it knows whether the answer will be stored: at once when it
will not (waiters go on without waiting for its body), when its body is
stored otherwise. A waiter waits once; it never queues behind a second flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class Flight:
    """One fetch of a key in flight."""

    __slots__ = ("_done", "_flights", "_key")

    def __init__(self, flights: Flights, key: Hashable) -> None:
        self._flights = flights
        self._key = key
        self._done = asyncio.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self, within: float) -> bool:
        """Until the fetch has ended, at most ``within`` seconds; whether it did."""
        if self._done.is_set():
            return True
        try:
            async with asyncio.timeout(within):
                await self._done.wait()
        except TimeoutError:
            return False
        return True

    def end(self) -> None:
        """The fetch knows what became of its answer: wake the waiters (idempotent)."""
        if not self._done.is_set():
            self._done.set()
            self._flights.forget(self._key, self)


class Flights:
    """The flights of one edge process, by key."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def get(self, key: Hashable) -> Flight | None:
        return self._flights.get(key)

    def start(self, key: Hashable) -> Flight | None:
        """A new flight for ``key``, held by the caller until it calls ``end``; None when
        one is in flight already."""
        if key in self._flights:
            return None
        flight = self._flights[key] = Flight(self, key)
        return flight

    def forget(self, key: Hashable, flight: Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
