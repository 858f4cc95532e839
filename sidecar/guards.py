"""Per-upstream-service resilience state: breakers (service and instance), budget, avoidance.

One :class:`ServiceGuard` per upstream service, created on first use from the
service's policy. Every breaker state change is reported once to the
``on_transition`` callback (logs, metrics) and is visible in :meth:`GuardRegistry.view`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mesh.hash_policy_config import hash_policy
from mesh.resilience.breaker import BreakerState, CircuitBreaker
from mesh.resilience.retry_budget import RetryBudget
from sidecar.resilience_config import ResilienceConfig, UpstreamPolicy

log = logging.getLogger(__name__)

Transition = Callable[[str, str | None, BreakerState, BreakerState], None]
"""(service, instance id or None for the service breaker, old state, new state)."""


class ServiceGuard:
    def __init__(
        self,
        service: str,
        policy: UpstreamPolicy,
        clock: Callable[[], float],
        on_transition: Transition,
    ) -> None:
        self.service = service
        self.policy = policy
        self._clock = clock
        self._on_transition = on_transition
        self._breaker_settings = policy.breaker.settings()
        self.breaker = CircuitBreaker(
            self._breaker_settings,
            clock=clock,
            on_transition=lambda old, new: on_transition(service, None, old, new),
        )
        self.budget = RetryBudget(policy.retries.budget(), clock=clock)
        self.hash_policy = hash_policy(policy.hash_policy)
        """Which part of a call is its hash key (None: calls are balanced alone)."""
        self.canary = policy.canary.canary() if policy.canary is not None else None
        """The service's canary release for this app's calls (None: none)."""
        self.instance_breakers: dict[str, CircuitBreaker] = {}
        self.avoid_until: dict[str, float] = {}
        """Instances that answered with backpressure, and until when to leave them alone."""
        self.hedges_won = 0
        """Hedges (``hedge_on_per_try_timeout``) whose answer was the call's."""
        self.hedges_lost = 0
        """Hedges that were not: an earlier attempt answered first, or the call failed."""

    def instance_breaker(self, instance_id: str) -> CircuitBreaker:
        breaker = self.instance_breakers.get(instance_id)
        if breaker is None:
            service = self.service
            breaker = CircuitBreaker(
                self._breaker_settings,
                clock=self._clock,
                on_transition=lambda old, new: self._on_transition(service, instance_id, old, new),
            )
            self.instance_breakers[instance_id] = breaker
        return breaker

    def ejected_at(self) -> dict[str, float]:
        """Instances whose breaker is open now, with when they tripped."""
        if not self.policy.outlier.instance_breakers:
            return {}
        out: dict[str, float] = {}
        for instance_id, breaker in self.instance_breakers.items():
            if breaker.state is BreakerState.OPEN and breaker.tripped_at is not None:
                out[instance_id] = breaker.tripped_at
        return out

    def avoid(self, instance_id: str, seconds: float) -> None:
        self.avoid_until[instance_id] = self._clock() + seconds

    def forget_instances(self, live: set[str]) -> None:
        """Drop state of instances that left the catalog."""
        for gone in set(self.instance_breakers) - live:
            del self.instance_breakers[gone]
        for gone in set(self.avoid_until) - live:
            del self.avoid_until[gone]

    def view(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "state": self.breaker.state.value,
            "retry_after_s": round(self.breaker.retry_after(), 3),
            "consecutive_trips": self.breaker.consecutive_trips,
            "window": self.breaker.window_totals()._asdict(),
            "hash_policy": None if self.hash_policy is None else self.hash_policy.describe(),
            "canary": None if self.policy.canary is None else self.policy.canary.model_dump(),
            "retry_budget": {
                "available": self.budget.available(),
                "retries_total": self.budget.retries_total,
                "exhausted_total": self.budget.exhausted_total,
            },
            "instances": {
                iid: {
                    "state": b.state.value,
                    "retry_after_s": round(b.retry_after(), 3),
                    "window": b.window_totals()._asdict(),
                }
                for iid, b in sorted(self.instance_breakers.items())
            },
            "avoided": {
                iid: round(until - now, 3)
                for iid, until in sorted(self.avoid_until.items())
                if until > now
            },
        }


def log_transition(
    service: str, instance: str | None, old: BreakerState, new: BreakerState
) -> None:
    what = f"instance {instance} of {service}" if instance else f"service {service}"
    level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
    log.log(level, "circuit breaker for %s: %s → %s", what, old.value, new.value)


class GuardRegistry:
    def __init__(
        self,
        config: ResilienceConfig,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._guards: dict[str, ServiceGuard] = {}
        listeners = [log_transition] + ([on_transition] if on_transition else [])

        def fan_out(s: str, i: str | None, old: BreakerState, new: BreakerState) -> None:
            for listener in listeners:
                listener(s, i, old, new)

        self._on_transition: Transition = fan_out

    def for_service(self, service: str) -> ServiceGuard:
        guard = self._guards.get(service)
        if guard is None:
            guard = ServiceGuard(
                service, self._config.policy_for(service), self._clock, self._on_transition
            )
            self._guards[service] = guard
        return guard

    def reconfigure(self, config: ResilienceConfig) -> list[str]:
        """Policies from ``config`` from now on; returns the services whose guard went.

        A service whose policy changed loses its guard: its next call makes a new one,
        breakers closed and budget full under the new settings (calls in flight finish
        on the old one). A service whose policy is unchanged keeps its guard and state,
        so a reload that does not touch it leaves an open breaker open."""
        self._config = config
        replaced = [n for n, g in self._guards.items() if config.policy_for(n) != g.policy]
        for name in replaced:
            del self._guards[name]
        return replaced

    def guards(self) -> list[ServiceGuard]:
        """Every guard created so far, by service name (for metrics)."""
        return [guard for _, guard in sorted(self._guards.items())]

    def view(self) -> dict[str, Any]:
        return {name: guard.view() for name, guard in sorted(self._guards.items())}
