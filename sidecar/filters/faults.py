"""Faults in the app's calls through the outbound listener, per destination service
(``outbound.faults.<service>``, ``"*"`` for every service without its own entry).

Runs after outbound routing (the service is known) and before the resilient proxy,
as Envoy's fault filter sits before the router, which is where Istio injects a
VirtualService's faults: on the caller's side, before the caller's own retries.
So an injected abort is the app's answer to see, not an upstream failure:

* it is **not retried** and spends no retry budget (no attempt was made:
  no ``X-Mesh-Attempts``);
* **no breaker counts it**, service or instance: the instances did nothing
  wrong, and a breaker opened by test faults would refuse the real calls too;
* it is answered even while the service's breaker is open (the fault is decided first).

A delay holds the call before the breaker is asked and before any attempt: the
attempts, their per-try timeouts and backoff then have only what is left of the
request's deadline, as after a slow hop. To see meshgate's breakers and retries
react, inject one hop further down: faults in a service's calls make that
service fail towards its own callers, whose sidecars' (and the edge's outlier
detection) see real failures.

A reload (``outbound.faults``) replaces every policy (active counts start afresh
for requests that start after it); with no entry at all the outbound chain has
no fault filter.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from mesh.chain import Filter, Handler
from mesh.exchange import Exchange
from mesh.faults.config import FaultConfig
from mesh.faults.injection import FaultInjection
from mesh.faults.policy import FaultPolicy, Roll

EVERY_SERVICE = "*"


class OutboundFaultFilter:
    def __init__(self, injection: FaultInjection, policies: Mapping[str, FaultPolicy]) -> None:
        """``policies`` by service name, ``"*"`` for the rest."""
        self._apply = injection.apply
        self._policies = dict(policies)
        self._rest = self._policies.pop(EVERY_SERVICE, None)

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        policy = self._policies.get(ex.service or "", self._rest)
        if policy is None:
            return next_handler(ex)
        return self._apply(ex, policy, next_handler)


class OutboundFaults:
    """The outbound chain's fault filter for the current ``outbound.faults``, if any;
    ``on_change`` (set by the sidecar) rebuilds the chain when a reload replaces it."""

    def __init__(
        self,
        faults: Mapping[str, FaultConfig],
        injection: FaultInjection,
        roll: Roll = random.random,
    ) -> None:
        self._injection = injection
        self._roll = roll
        self._filter = self.prepare(faults)
        self.on_change: Callable[[], None] = lambda: None

    def filters(self) -> list[Filter]:
        """What goes between outbound routing and the resilient proxy: [] for no faults."""
        return [self._filter] if self._filter is not None else []

    def prepare(self, faults: Mapping[str, FaultConfig]) -> OutboundFaultFilter | None:
        """The filter for ``faults``, not installed yet."""
        if not faults:
            return None
        policies = {name: FaultPolicy(config, self._roll) for name, config in faults.items()}
        return OutboundFaultFilter(self._injection, policies)

    def install(self, prepared: OutboundFaultFilter | None) -> None:
        self._filter = prepared
        self.on_change()
