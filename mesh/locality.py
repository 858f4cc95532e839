"""Locality-aware (zone-aware) routing: which of a service's instances a proxy in a
given zone draws from.

The rule (:func:`choose`), applied to the instances left after the canary side is
drawn and ejected outliers are left out, before the balancer picks among them:

1. the instances in the proxy's zone, when there are at least ``min_healthy`` of
   them and at least ``min_share`` of all the candidates;
2. else, when the proxy has a region, the instances in its region (any zone), under
   the same two thresholds;
3. else all of them.

An instance's zone and region come from the catalog (:mod:`discovery.convert`); one
with no zone is never local, one with no region never in the region. Zones are
compared by name alone: zone names are unique across regions (``eu-west-1a``).

:class:`LocalityRouter` applies the rule on the request path: its choice for a
service's whole healthy set is memoised until the catalog changes, so the common
request (no canary, nothing ejected) costs one dict lookup, one identity test and a
counter increment; other subsets are filtered as they come.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from mesh.snapshot import Instance


class Scope(StrEnum):
    """Which tier of :func:`choose` a request's instances came from."""

    ZONE = "zone"
    REGION = "region"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class LocalityPolicy:
    """Where this proxy is, and when its zone (or region) is enough."""

    zone: str
    region: str = ""
    min_healthy: int = 1
    """A tier is used only with at least this many instances (at least 1)."""
    min_share: float = 0.0
    """... and at least this share (0 to 1) of all the candidates."""


def choose(
    policy: LocalityPolicy, instances: tuple[Instance, ...]
) -> tuple[tuple[Instance, ...], Scope]:
    """The instances a request should be balanced over, and their tier (the rule in
    the module docstring). ``instances`` itself when it is empty or every instance is
    in the chosen tier."""
    need = max(policy.min_healthy, math.ceil(policy.min_share * len(instances)), 1)
    zone = policy.zone
    local = tuple(i for i in instances if i.zone == zone)
    if len(local) >= need:
        return (instances if len(local) == len(instances) else local), Scope.ZONE
    region = policy.region
    if region:
        near = tuple(i for i in instances if i.region == region)
        if len(near) >= need:
            return (instances if len(near) == len(instances) else near), Scope.REGION
    return instances, Scope.ANY


Count = Callable[[str, Scope], Callable[[], None]]
"""``count(service, scope)`` → a function that counts one request of that service
from that tier (a metric child's ``inc``), made once per service and tier."""


_Inc = Callable[[], None]


class LocalityRouter:
    """:meth:`narrow` on the request path; one per proxy, its policies fixed.

    ``policies`` maps a service to its own policy, or to None to route it without
    regard to locality; other services use ``default`` (None: the same).
    """

    def __init__(
        self,
        default: LocalityPolicy | None,
        policies: Mapping[str, LocalityPolicy | None] | None = None,
        count: Count | None = None,
    ) -> None:
        self._default = default
        self._policies = dict(policies or {})
        self._count = count
        # service → (the healthy tuple it was made for, its choice, that tier's count).
        self._memo: dict[str, tuple[tuple[Instance, ...], tuple[Instance, ...], _Inc]] = {}
        self._incs: dict[tuple[str, Scope], _Inc] = {}

    def policy(self, service: str) -> LocalityPolicy | None:
        return self._policies.get(service, self._default)

    def narrow(
        self, service: str, healthy: tuple[Instance, ...], instances: tuple[Instance, ...]
    ) -> tuple[Instance, ...]:
        """The instances of ``service`` a request draws from: ``instances`` (a subset of
        the service's ``healthy`` ones, or that very tuple) narrowed by the rule, and
        the request counted by its tier. An empty ``instances`` is returned as is,
        uncounted (the request fails for want of an instance)."""
        if instances is healthy:
            memo = self._memo.get(service)
            if memo is None or memo[0] is not healthy:
                memo = self._remember(service, healthy)
            memo[2]()
            return memo[1]
        if not instances:
            return instances
        policy = self.policy(service)
        if policy is None:
            return instances
        chosen, scope = choose(policy, instances)
        self._inc(service, scope)()
        return chosen

    def _remember(
        self, service: str, healthy: tuple[Instance, ...]
    ) -> tuple[tuple[Instance, ...], tuple[Instance, ...], _Inc]:
        policy = self.policy(service)
        if policy is None or not healthy:
            memo = (healthy, healthy, _nothing)
        else:
            chosen, scope = choose(policy, healthy)
            memo = (healthy, chosen, self._inc(service, scope))
        self._memo[service] = memo
        return memo

    def _inc(self, service: str, scope: Scope) -> _Inc:
        inc = self._incs.get((service, scope))
        if inc is None:
            inc = _nothing if self._count is None else self._count(service, scope)
            self._incs[(service, scope)] = inc
        return inc

    def forget(self, services: Mapping[str, object]) -> None:
        """Drop what is kept for services no longer in ``services`` (the catalog)."""
        for gone in [s for s in self._memo if s not in services]:
            del self._memo[gone]


def _nothing() -> None:
    pass
