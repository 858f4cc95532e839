"""Breaker state, retries and budget exhaustion as Prometheus series, read from the guards."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mesh.resilience.outcome import CallOutcome
from sidecar.guards import GuardRegistry
from sidecar.resilience_config import ResilienceConfig
from sidecar.resilience_metrics import BreakerTransitions, ResilienceCollector

CONFIG = ResilienceConfig.model_validate(
    {
        "defaults": {
            "breaker": {"min_calls": 2, "window_size": 2, "open_base": "5s", "open_jitter": 0},
            "retries": {"budget_ratio": 0.0, "budget_min_per_second": 0.1, "budget_window": "10s"},
        }
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_breakers_retries_and_budget() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    transitions = BreakerTransitions()
    guards = GuardRegistry(CONFIG, clock=clock, on_transition=transitions)
    registry.register(ResilienceCollector(guards, transitions))
    assert not [k for k in scrape(registry) if k[0] == "meshgate_breaker_state"]

    guard = guards.for_service("inventory")
    instance = guard.instance_breaker("inventory-1")
    for breaker in (guard.breaker, instance):
        for _ in range(2):
            permit = breaker.acquire()
            assert permit is not None
            breaker.record(permit, CallOutcome.response(503))
    assert guard.budget.try_acquire_retry()  # the floor allows one retry per window
    assert not guard.budget.try_acquire_retry()

    got = scrape(registry)
    assert got[("meshgate_breaker_state", (("instance_id", ""), ("service", "inventory")))] == 2
    key = (("instance_id", "inventory-1"), ("service", "inventory"))
    assert got[("meshgate_breaker_state", key)] == 2
    assert got[("meshgate_retries_total", (("service", "inventory"),))] == 1
    assert got[("meshgate_retry_budget_exhausted_total", (("service", "inventory"),))] == 1
    assert got[("meshgate_retry_budget_available", (("service", "inventory"),))] == 0
    opened = (("instance_id", ""), ("service", "inventory"), ("state", "open"))
    assert got[("meshgate_breaker_transitions_total", opened)] == 1

    clock.now += 5.0  # the open period is over: read as half-open at scrape time
    got = scrape(registry)
    assert got[("meshgate_breaker_state", (("instance_id", ""), ("service", "inventory")))] == 1
    half_open = (("instance_id", ""), ("service", "inventory"), ("state", "half_open"))
    assert got[("meshgate_breaker_transitions_total", half_open)] == 1
