"""Requests in flight per service, and the most each may have at once (a bulkhead).

This is Envoy's cluster circuit breaker ``max_requests``: a service that slows
down keeps its requests in flight longer, and without a bound they pile up in the
proxy (memory, sockets, the event loop's time) until every route suffers. With a
bound, the requests over it are refused at once, the other services untouched.

:class:`ServiceConcurrency` is the count and the decision, nothing else: the
proxy calls :meth:`~ServiceConcurrency.enter` before it picks an instance and
:meth:`~ServiceConcurrency.leave` when the request is over (its response written
to the end, a tunnel closed, or it failed), whatever happened in between. The
counts are of this process (each edge worker has its own, as each Envoy has).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class Slots:
    """Slots taken per key, at most a limit each: requests in flight per service, a
    route's mirrored copies in flight. A key with none taken is absent from :attr:`taken`."""

    __slots__ = ("taken",)

    def __init__(self) -> None:
        self.taken: dict[str, int] = {}

    def take(self, key: str, limit: int | None) -> bool:
        """Take one of ``key``'s slots (None: no limit); False when all ``limit`` are taken."""
        taken = self.taken.get(key, 0)
        if limit is not None and taken >= limit:
            return False
        self.taken[key] = taken + 1
        return True

    def give_back(self, key: str) -> None:
        """Give back a slot :meth:`take` gave."""
        left = self.taken[key] - 1
        if left:
            self.taken[key] = left
        else:
            del self.taken[key]


class ServiceConcurrency:
    """Counts requests in flight per service and refuses those over a service's limit.

    ``default`` is every service's limit (None: no limit) unless ``limits`` gives
    the service its own (None there: that service has no limit). :meth:`configure`
    changes the limits and keeps the counts, so a reload never forgets requests in
    flight.
    """

    __slots__ = ("_default", "_limits", "_on_overflow", "_slots", "active", "overflows")

    def __init__(
        self,
        default: int | None = None,
        limits: Mapping[str, int | None] | None = None,
        on_overflow: Callable[[str], None] | None = None,
    ) -> None:
        """``on_overflow(service)`` is told of each request refused (a metric)."""
        self._default = default
        self._limits: Mapping[str, int | None] = dict(limits or {})
        self._on_overflow = on_overflow
        self._slots = Slots()
        self.active: dict[str, int] = self._slots.taken
        """Requests in flight per service (a service with none is absent)."""
        self.overflows: dict[str, int] = {}
        """Requests refused per service since start."""

    def configure(self, default: int | None, limits: Mapping[str, int | None]) -> None:
        """New limits, from the next request on; requests in flight stay counted (a
        service now over its limit refuses until enough of them are over)."""
        self._default = default
        self._limits = dict(limits)

    def limit(self, service: str) -> int | None:
        """``service``'s limit (None: none)."""
        return self._limits.get(service, self._default)

    def enter(self, service: str) -> int | None:
        """Admit one more request to ``service`` (counted: :meth:`leave` must follow) and
        return None; or, when it already has its limit in flight, count the refusal and
        return that limit (the request must not be sent, nor left)."""
        limit = self._limits.get(service, self._default)
        if self._slots.take(service, limit):
            return None
        assert limit is not None  # only a limit refuses
        self.overflows[service] = self.overflows.get(service, 0) + 1
        if self._on_overflow is not None:
            self._on_overflow(service)
        return limit

    def leave(self, service: str) -> None:
        """An admitted request to ``service`` is over."""
        self._slots.give_back(service)

    def view(self) -> dict[str, Any]:
        """Per service with a limit, requests in flight or refusals: each of the three."""
        names = set(self._limits) | set(self.active) | set(self.overflows)
        return {
            name: {
                "limit": self.limit(name),
                "active": self.active.get(name, 0),
                "overflows": self.overflows.get(name, 0),
            }
            for name in sorted(names)
        }
