"""Passive outlier detection: instances that keep failing the caller's own requests
leave the rotation for a while (purely: clock and randomness injected).

Consul's health checks look at an instance every few seconds, through its health
path; an instance can pass them and still fail real requests, or fail for the
seconds until the next check. A proxy sees every answer, so it can act sooner:
each instance of each service has a circuit breaker
(:class:`mesh.resilience.breaker.CircuitBreaker`) fed with the outcomes of the
calls made to it, and an instance whose breaker is open is *ejected* — left out
of load balancing (:func:`mesh.resilience.ejection.select_eligible`: at most
``max_ejection_share`` of a service's instances, at least one, and every
instance again when none would be left) until the open period passes. Then a
few trial calls decide: they succeed and the instance is back, or one fails and
it is ejected for longer. This is Envoy's outlier detection (consecutive 5xx,
an ejection time growing with each ejection, a maximum ejection percentage),
with the breaker's failure-rate window on top.

What counts as a failure is the breaker's rule: no connection, a timeout, a
connection lost mid-answer, or a status in ``failure_statuses`` (every 5xx by
default), except backpressure (429 or 503 with ``Retry-After``): an instance
asking for less load is *avoided* for the time it names (:meth:`OutlierDetector.avoid`,
at most :data:`~mesh.resilience.ejection.MAX_AVOIDANCE_S`), as a sidecar avoids
it, without counting against it. Avoidance is not capped by the share, only
overridden when nothing would be left.

An instance may also be ejected from outside (:meth:`OutlierDetector.eject_for`):
another edge worker ejected it, or an operator did. It is then out for the time
given (at most :data:`~mesh.resilience.ejection.MAX_AVOIDANCE_S`), counted
against the share like an ejection of this detector's own, with no trial calls
of its own: when the time is over it is back in rotation, and this detector's
breaker judges it again.

The per-request cost when nothing is ejected is a count looked up per service
(:meth:`OutlierDetector.eligible` hands the instances back as they are), and a
breaker's admission and record per attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mesh.resilience.breaker import BreakerSettings, BreakerState, CircuitBreaker, Permit
from mesh.resilience.ejection import MAX_AVOIDANCE_S, select_eligible
from mesh.snapshot import Instance

Ejection = Callable[[str, str, BreakerState, BreakerState], None]
"""(service, instance id, old state, new state): told of every breaker state change."""


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """How one service's instances are judged."""

    breaker: BreakerSettings
    max_ejection_share: float

    def __post_init__(self) -> None:
        if not 0 <= self.max_ejection_share <= 1:
            raise ValueError(
                f"max_ejection_share must be in [0, 1], got {self.max_ejection_share!r}"
            )


class OutlierDetector:
    """The breakers of every instance called, by service; which instances are eligible.

    Per attempt: :meth:`admit` before sending (a permit, or None when the
    instance's breaker takes no call now), then the permit is settled on the
    breaker returned with it: ``record`` with the outcome, or ``release`` when
    the attempt says nothing about the instance (the client's body failed, the
    request was cancelled).
    """

    def __init__(
        self,
        settings: BreakerSettings,
        max_ejection_share: float,
        *,
        services: Mapping[str, OutlierPolicy | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        random_unit: Callable[[], float] = random.random,
        on_transition: Ejection | None = None,
    ) -> None:
        """``settings`` and ``max_ejection_share`` judge every service but those in
        ``services``: a policy of their own, or None for a service never judged (its
        instances all eligible, no breaker kept)."""
        self._default = OutlierPolicy(settings, max_ejection_share)
        self._policies = {n: p for n, p in (services or {}).items() if p is not None}
        self._unjudged = frozenset(n for n, p in (services or {}).items() if p is None)
        self.timed = any(
            p.breaker.slow_calls_enabled for p in (self._default, *self._policies.values())
        )
        """Whether calls must be timed: only slow-call detection reads their duration."""
        self._clock = clock
        self._random = random_unit
        self._on_transition = on_transition
        self._breakers: dict[str, dict[str, CircuitBreaker]] = {}
        self._suspects: dict[str, int] = {}
        """Per service, its breakers not closed (open or half-open): none, nothing to filter."""
        self.ejections: dict[str, int] = {}
        """Per service, how many times one of its instances was ejected (breaker opened)."""
        self._avoid_until: dict[str, dict[str, float]] = {}
        """Per service, instances that answered with backpressure, and until when."""
        self._told: dict[str, dict[str, tuple[float, float]]] = {}
        """Per service, instances ejected from outside: (when told, until when)."""

    def eligible(self, service: str, instances: tuple[Instance, ...]) -> tuple[Instance, ...]:
        """``instances`` without the ejected ones (in the same order); all of them when
        none is, or when none would be left."""
        avoided = self._avoid_until.get(service)
        if not self._suspects.get(service) and avoided is None and service not in self._told:
            return instances
        now = self._clock()
        if avoided is not None:
            for instance_id in [i for i, until in avoided.items() if until <= now]:
                del avoided[instance_id]
            if not avoided:
                del self._avoid_until[service]
                avoided = None
        ejected_at = self._ejected_at(service)
        if not ejected_at and avoided is None:
            return instances
        result = select_eligible(
            [i.id for i in instances],
            ejected_at=ejected_at,
            avoid_until=avoided or {},
            now=now,
            max_ejection_share=self._policy(service).max_ejection_share,
        )
        if result.panic or len(result.eligible) == len(instances):
            return instances
        keep = set(result.eligible)
        return tuple(i for i in instances if i.id in keep)

    def judges(self, service: str) -> bool:
        """False for a service its policy leaves alone (call nothing else for it)."""
        return service not in self._unjudged

    def admit(self, service: str, instance_id: str) -> tuple[CircuitBreaker, Permit | None]:
        """The instance's breaker and its permit for one call (None: it takes none now,
        being open, or half-open with every trial slot taken)."""
        breakers = self._breakers.get(service)
        if breakers is None:
            breakers = self._breakers[service] = {}
        breaker = breakers.get(instance_id)
        if breaker is None:
            breaker = breakers[instance_id] = self._new_breaker(service, instance_id)
        return breaker, breaker.acquire()

    def open_for(self, service: str, instance_id: str) -> float:
        """Seconds the instance's breaker stays open from now (0: not open)."""
        breaker = self._breakers.get(service, {}).get(instance_id)
        if breaker is None or breaker.state is not BreakerState.OPEN:
            return 0.0
        return breaker.retry_after()

    def eject_for(self, service: str, instance_id: str, seconds: float) -> None:
        """Eject the instance for ``seconds`` (at most
        :data:`~mesh.resilience.ejection.MAX_AVOIDANCE_S`) on another's word: another
        worker's breaker opened, or an operator asked. Counted against the share."""
        now = self._clock()
        self._told.setdefault(service, {})[instance_id] = (
            now,
            now + min(seconds, MAX_AVOIDANCE_S),
        )

    def avoid(self, service: str, instance_id: str, seconds: float) -> None:
        """Leave the instance out of rotation for ``seconds`` (at most
        :data:`~mesh.resilience.ejection.MAX_AVOIDANCE_S`): it asked for less load."""
        until = self._clock() + min(seconds, MAX_AVOIDANCE_S)
        self._avoid_until.setdefault(service, {})[instance_id] = until

    def forget(self, live: Iterable[Instance]) -> None:
        """Drop the breakers of instances no longer in the catalog (call on each snapshot)."""
        ids: dict[str, set[str]] = {}
        for instance in live:
            ids.setdefault(instance.service, set()).add(instance.id)
        for service, breakers in list(self._breakers.items()):
            keep = ids.get(service, set())
            for gone in [iid for iid in breakers if iid not in keep]:
                if breakers.pop(gone).state is not BreakerState.CLOSED:
                    self._suspects[service] -= 1
            if not breakers:
                del self._breakers[service]
        _forget_gone(self._avoid_until, ids)
        _forget_gone(self._told, ids)

    def view(self) -> dict[str, Any]:
        """The admin listener's ``/outliers``: per service, its instances not in good
        standing, those avoided (seconds left), and how many ejections it has seen."""
        out: dict[str, Any] = {}
        for service, breakers in sorted(self._breakers.items()):
            ejected_at = self._ejected_at(service)
            instances = {
                iid: {
                    "state": b.state.value,
                    "ejected": iid in ejected_at,
                    "retry_after_s": round(b.retry_after(), 3),
                    "consecutive_ejections": b.consecutive_trips,
                    "window": b.window_totals()._asdict(),
                }
                for iid, b in sorted(breakers.items())
                if b.state is not BreakerState.CLOSED or b.window_totals().failures
            }
            out[service] = {
                "ejections": self.ejections.get(service, 0),
                "instances": instances,
                "avoided": {},
            }
        now = self._clock()
        for service, avoided in sorted(self._avoid_until.items()):
            entry = out.setdefault(service, {"ejections": 0, "instances": {}, "avoided": {}})
            entry["avoided"] = {
                iid: round(until - now, 3) for iid, until in sorted(avoided.items()) if until > now
            }
        for service, told in sorted(self._told.items()):
            entry = out.setdefault(service, {"ejections": 0, "instances": {}, "avoided": {}})
            entry["ejected_when_told"] = {
                iid: round(until - now, 3)
                for iid, (_, until) in sorted(told.items())
                if until > now
            }
        return dict(sorted(out.items()))

    def ejected_count(self, service: str) -> int:
        """Instances of ``service`` ejected now, by their breaker or when told (before the
        share cap)."""
        if not self._suspects.get(service) and service not in self._told:
            return 0
        return len(self._ejected_at(service))

    def services(self) -> list[str]:
        return sorted(set(self._breakers) | set(self._told))

    def _ejected_at(self, service: str) -> dict[str, float]:
        """Instances ejected now, with when: their breaker's trip, or when told."""
        out: dict[str, float] = {}
        told = self._told.get(service)
        if told is not None:
            now = self._clock()
            for instance_id in [i for i, (_, until) in told.items() if until <= now]:
                del told[instance_id]
            if not told:
                del self._told[service]
            out.update((instance_id, at) for instance_id, (at, _) in told.items())
        for instance_id, breaker in self._breakers.get(service, {}).items():
            if breaker.state is BreakerState.OPEN and breaker.tripped_at is not None:
                out[instance_id] = min(breaker.tripped_at, out.get(instance_id, breaker.tripped_at))
        return out

    def _new_breaker(self, service: str, instance_id: str) -> CircuitBreaker:
        def transition(old: BreakerState, new: BreakerState) -> None:
            if old is BreakerState.CLOSED:
                self._suspects[service] = self._suspects.get(service, 0) + 1
            elif new is BreakerState.CLOSED:
                self._suspects[service] -= 1
            if new is BreakerState.OPEN:
                self.ejections[service] = self.ejections.get(service, 0) + 1
            if self._on_transition is not None:
                self._on_transition(service, instance_id, old, new)

        return CircuitBreaker(
            self._policy(service).breaker,
            clock=self._clock,
            random_unit=self._random,
            on_transition=transition,
        )

    def _policy(self, service: str) -> OutlierPolicy:
        return self._policies.get(service, self._default)


def _forget_gone(table: dict[str, dict[str, Any]], live: Mapping[str, set[str]]) -> None:
    """Drop from ``table`` (per service, per instance id) the instances not in ``live``."""
    for service, entries in list(table.items()):
        keep = live.get(service, set())
        for gone in [iid for iid in entries if iid not in keep]:
            del entries[gone]
        if not entries:
            del table[service]
