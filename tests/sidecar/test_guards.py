"""GuardRegistry.reconfigure: an upstream whose policy changed starts afresh; the others
keep their breakers as they are (a reload must not close an open breaker it did not touch)."""

from __future__ import annotations

from mesh.resilience.breaker import BreakerState
from mesh.resilience.outcome import CallOutcome
from sidecar.guards import GuardRegistry
from sidecar.resilience_config import ResilienceConfig

BREAKER = {"min_calls": 2, "window_size": 2, "open_base": "5s", "open_jitter": 0}


def resilience(**services: object) -> ResilienceConfig:
    return ResilienceConfig.model_validate({"defaults": {"breaker": BREAKER}, "services": services})


def tripped(guards: GuardRegistry, service: str) -> None:
    breaker = guards.for_service(service).breaker
    for _ in range(2):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, CallOutcome.response(503))
    assert breaker.state is BreakerState.OPEN


def test_only_changed_policies_start_afresh() -> None:
    now = [1000.0]
    guards = GuardRegistry(resilience(), clock=lambda: now[0])
    tripped(guards, "inventory")
    tripped(guards, "users")
    users = guards.for_service("users")

    replaced = guards.reconfigure(resilience(inventory={"retries": {"max_attempts": 5}}))
    assert replaced == ["inventory"]
    fresh = guards.for_service("inventory")
    assert fresh.breaker.state is BreakerState.CLOSED
    assert fresh.policy.retries.max_attempts == 5
    assert guards.for_service("users") is users  # untouched: still open
    assert users.breaker.state is BreakerState.OPEN

    # A service first called after the reload gets the new policy too.
    assert guards.reconfigure(resilience(orders={"retries": {"max_attempts": 2}})) == [
        "inventory"  # back to the defaults: changed again
    ]
    assert guards.for_service("orders").policy.retries.max_attempts == 2
    assert guards.reconfigure(resilience(orders={"retries": {"max_attempts": 2}})) == []
