"""Load-balancing selectors: which healthy instance takes the next request.

Selectors are per service and keep only tiny state; the caller passes the
instances (from the current snapshot) and the ids to avoid (already tried,
ejected), so a selector never needs to know about snapshots or health.
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from typing import Literal, Protocol

from mesh.snapshot import Instance

Algorithm = Literal["round_robin", "least_request"]


class InFlight:
    """Requests in flight per instance id, maintained by the proxy."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def acquire(self, instance_id: str) -> None:
        self._counts[instance_id] = self._counts.get(instance_id, 0) + 1

    def release(self, instance_id: str) -> None:
        left = self._counts.get(instance_id, 0) - 1
        if left > 0:
            self._counts[instance_id] = left
        else:
            self._counts.pop(instance_id, None)

    def get(self, instance_id: str) -> int:
        return self._counts.get(instance_id, 0)


class Selector(Protocol):
    def pick(self, instances: Sequence[Instance], exclude: Container[str] = ()) -> Instance | None:
        """Return one of ``instances`` whose id is not in ``exclude``, or None if none is left."""


def _candidates(instances: Sequence[Instance], exclude: Container[str]) -> Sequence[Instance]:
    if not exclude:
        return instances
    return [i for i in instances if i.id not in exclude]


class RoundRobin:
    """Cycles through the instances in catalog order."""

    __slots__ = ("_next",)

    def __init__(self, start: int = 0) -> None:
        self._next = start

    def pick(self, instances: Sequence[Instance], exclude: Container[str] = ()) -> Instance | None:
        candidates = _candidates(instances, exclude)
        if not candidates:
            return None
        choice = candidates[self._next % len(candidates)]
        self._next += 1
        return choice


class LeastInFlight:
    """Power of two choices: sample two instances, take the one with fewer requests in flight.

    Nearly as good as a full least-loaded scan, O(1), and without the herd effect
    of every proxy picking the same "least loaded" instance at once.
    """

    __slots__ = ("_in_flight", "_rng")

    def __init__(self, in_flight: InFlight, rng: random.Random | None = None) -> None:
        self._in_flight = in_flight
        self._rng = rng or random.Random()

    def pick(self, instances: Sequence[Instance], exclude: Container[str] = ()) -> Instance | None:
        candidates = _candidates(instances, exclude)
        n = len(candidates)
        if n == 0:
            return None
        if n == 1:
            return candidates[0]
        a, b = self._rng.sample(range(n), 2)
        ia, ib = candidates[a], candidates[b]
        return ia if self._in_flight.get(ia.id) <= self._in_flight.get(ib.id) else ib


class Balancer:
    """One selector per service, created on first use with the configured algorithm."""

    def __init__(self, algorithm: Algorithm, in_flight: InFlight | None = None) -> None:
        self.algorithm = algorithm
        self.in_flight = in_flight or InFlight()
        self._selectors: dict[str, Selector] = {}

    def selector(self, service: str) -> Selector:
        sel = self._selectors.get(service)
        if sel is None:
            if self.algorithm == "least_request":
                sel = LeastInFlight(self.in_flight)
            else:
                sel = RoundRobin(random.randrange(1 << 16))
            self._selectors[service] = sel
        return sel
