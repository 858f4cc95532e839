"""Load-balancing selectors: which healthy instance takes the next request.

Selectors are per service and keep only tiny state; the caller passes the
instances (from the current snapshot) and the ids to avoid (already tried,
ejected), so a selector never needs to know about snapshots or health.

Instance weights (:attr:`~mesh.snapshot.Instance.weight`) are honoured only when
the service's weights differ (:attr:`~mesh.snapshot.Instance.weighted`): an
unweighted service runs the equal-share code, at the cost of one attribute test.
Requests with a hash key go through :mod:`mesh.maglev` instead (:meth:`Balancer.hashed`).
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from typing import Literal, Protocol

from mesh.maglev import HashedPick, MaglevTables, key_hash
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
    """Cycles through the instances in catalog order; with unequal weights, a smooth
    weighted round robin (nginx's): over any run of picks each instance's share
    follows its weight, and the heavy ones' turns are spread out, not bunched."""

    __slots__ = ("_current", "_next")

    def __init__(self, start: int = 0) -> None:
        self._next = start
        self._current: dict[str, int] = {}
        """Smooth WRR's running score per instance id (weighted services only)."""

    def pick(self, instances: Sequence[Instance], exclude: Container[str] = ()) -> Instance | None:
        candidates = _candidates(instances, exclude)
        if not candidates:
            return None
        if candidates[0].weighted:  # the service's flag: any of its instances carries it
            return self._smooth(instances, exclude)
        choice = candidates[self._next % len(candidates)]
        self._next += 1
        return choice

    def _smooth(self, instances: Sequence[Instance], exclude: Container[str]) -> Instance | None:
        """Every candidate's score grows by its weight; the highest takes the request
        and gives back the total. An excluded instance keeps its score unchanged; the
        scores of instances no longer given are dropped."""
        current = self._current
        scores: dict[str, int] = {}
        best: Instance | None = None
        best_score = 0
        total = 0
        for instance in instances:
            score = current.get(instance.id, 0)
            if exclude and instance.id in exclude:
                scores[instance.id] = score
                continue
            score += instance.weight
            total += instance.weight
            scores[instance.id] = score
            if best is None or score > best_score:
                best, best_score = instance, score
        if best is not None:
            scores[best.id] = best_score - total
        self._current = scores
        return best


class LeastInFlight:
    """Power of two choices: sample two instances, take the one with fewer requests in flight.

    Nearly as good as a full least-loaded scan, O(1), and without the herd effect
    of every proxy picking the same "least loaded" instance at once.

    With unequal weights (as Envoy's weighted least request), the two are drawn with
    chances proportional to their weights, and the one with fewer requests in flight
    *per unit of weight* wins, the first drawn on a tie: idle instances then take
    shares proportional to their weights, loaded ones are loaded in that proportion.
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
        if candidates[0].weighted:
            return self._weighted(candidates)
        a, b = self._rng.sample(range(n), 2)
        ia, ib = candidates[a], candidates[b]
        return ia if self._in_flight.get(ia.id) <= self._in_flight.get(ib.id) else ib

    def _weighted(self, candidates: Sequence[Instance]) -> Instance:
        """Two distinct candidates (at least two), each drawn weight-proportionally
        (the second among the others); the less loaded relative to weight."""
        total = sum(i.weight for i in candidates)
        rng = self._rng
        a = _draw(candidates, rng.random() * total, None)
        b = _draw(candidates, rng.random() * (total - a.weight), a)
        load_a, load_b = self._in_flight.get(a.id), self._in_flight.get(b.id)
        # load_a / weight_a <= load_b / weight_b, without division.
        return a if load_a * b.weight <= load_b * a.weight else b


def _draw(candidates: Sequence[Instance], point: float, skip: Instance | None) -> Instance:
    """The candidate (other than ``skip``) whose stretch of the weights laid end to
    end holds ``point`` (0 <= point < their total)."""
    last = None
    for instance in candidates:
        if instance is skip:
            continue
        last = instance
        point -= instance.weight
        if point < 0:
            return instance
    assert last is not None  # callers pass at least one candidate besides ``skip``
    return last  # rounding at the very end of the range


class Balancer:
    """One selector per service, created on first use with the configured algorithm."""

    def __init__(self, algorithm: Algorithm, in_flight: InFlight | None = None) -> None:
        self.algorithm = algorithm
        self.in_flight = in_flight or InFlight()
        self._selectors: dict[str, Selector] = {}
        self._tables: dict[str, MaglevTables] = {}

    def selector(self, service: str) -> Selector:
        sel = self._selectors.get(service)
        if sel is None:
            if self.algorithm == "least_request":
                sel = LeastInFlight(self.in_flight)
            else:
                sel = RoundRobin(random.randrange(1 << 16))
            self._selectors[service] = sel
        return sel

    def hashed(self, service: str, key: str) -> Selector:
        """The selector of a request with hash key ``key``: the instance Maglev maps
        the key to among those an attempt may use (see :mod:`mesh.maglev`)."""
        tables = self._tables.get(service)
        if tables is None:
            tables = self._tables[service] = MaglevTables()
        return HashedPick(tables, key_hash(key))
