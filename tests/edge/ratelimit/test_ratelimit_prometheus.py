"""Prometheus series of the limiters (edge/ratelimit/prometheus.py)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from edge.ratelimit import (
    LimitOutcome,
    LimitPolicy,
    LimitRequest,
    LimitResult,
    PrometheusObserver,
    parse_rate,
)

USER = LimitPolicy("per-user", parse_rate("10/s"))
ROUTE = LimitPolicy("per-route", parse_rate("1/s"))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"meshgate_ratelimit_{name}", labels)


def test_records_decisions_round_trips_and_health() -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    user, route = LimitRequest(USER, "a"), LimitRequest(ROUTE, "/x")
    observer.on_decision(
        LimitResult(
            allowed=False,
            source="redis",
            degraded=False,
            requests=(user, route),
            outcomes=(LimitOutcome(user, True, 3, 1, 0), LimitOutcome(route, False, 0, 1, 1)),
            retry_after_s=1,
        )
    )
    observer.on_decision(LimitResult(allowed=True, source="open", degraded=True, requests=(user,)))
    observer.on_decision(
        LimitResult(allowed=False, source="closed", degraded=True, requests=(route,))
    )
    observer.on_decision(
        LimitResult(
            allowed=True,
            source="local",
            degraded=True,
            requests=(user,),
            outcomes=(LimitOutcome(user, True, 3, 1, 0),),
        )
    )
    decisions = "decisions_total"
    assert sample(registry, decisions, policy="per-user", outcome="spared", source="redis") == 1
    assert sample(registry, decisions, policy="per-route", outcome="refused", source="redis") == 1
    assert sample(registry, decisions, policy="per-user", outcome="failed_open", source="open") == 1
    assert (
        sample(registry, decisions, policy="per-route", outcome="failed_closed", source="closed")
        == 1
    )
    assert sample(registry, decisions, policy="per-user", outcome="allowed", source="local") == 1

    observer.on_round_trip(0.002, 17, None)
    observer.on_round_trip(0.05, 3, "timeout")
    assert sample(registry, "redis_round_trip_seconds_count") == 1
    assert sample(registry, "redis_batch_commands_sum") == 17
    assert sample(registry, "redis_errors_total", kind="timeout") == 1

    observer.on_health_change(False, "timeout")
    assert sample(registry, "degraded") == 1
    observer.on_health_change(True, None)
    assert sample(registry, "degraded") == 0


def test_a_batch_of_decisions_counts_as_each_decision_would() -> None:
    user, route = LimitRequest(USER, "a"), LimitRequest(ROUTE, "/x")
    admitted = LimitResult(
        True, "redis", False, (user, route), (LimitOutcome(user, True, 3, 1, 0),) * 2
    )
    refused = LimitResult(
        False,
        "redis",
        False,
        (user, route),
        (LimitOutcome(user, True, 3, 1, 0), LimitOutcome(route, False, 0, 1, 1)),
        1,
    )
    local = LimitResult(True, "local", True, (user,), (LimitOutcome(user, True, 3, 1, 0),))
    opened = LimitResult(True, "open", True, (route,))
    batch = [admitted, refused, admitted, local, opened, admitted]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    observer = PrometheusObserver(one_by_one)
    for result in batch:
        observer.on_decision(result)
    PrometheusObserver(batched).on_decisions(batch)
    expected = {
        ("per-user", "allowed", "redis"): 3,
        ("per-route", "allowed", "redis"): 3,
        ("per-user", "spared", "redis"): 1,
        ("per-route", "refused", "redis"): 1,
        ("per-user", "allowed", "local"): 1,
        ("per-route", "failed_open", "open"): 1,
    }
    for registry in (one_by_one, batched):
        found = {
            (s.labels["policy"], s.labels["outcome"], s.labels["source"]): s.value
            for metric in registry.collect()
            if metric.name == "meshgate_ratelimit_decisions"
            for s in metric.samples
            if s.name.endswith("_total")
        }
        assert found == expected


async def test_admissions_on_a_loop_are_counted_at_the_end_of_its_turn() -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    user, route = LimitRequest(USER, "a"), LimitRequest(ROUTE, "/x")
    local = LimitResult(True, "local", True, (user,), (LimitOutcome(user, True, 3, 1, 0),))
    refused = LimitResult(False, "local", True, (route,), (LimitOutcome(route, False, 0, 1, 1),), 1)
    for _ in range(3):
        observer.on_decision(local)
    observer.on_decision(refused)
    allowed = {"policy": "per-user", "outcome": "allowed", "source": "local"}
    # Refusals are counted at once; admissions once the loop turn ends, all of them.
    assert (
        sample(registry, "decisions_total", policy="per-route", outcome="refused", source="local")
        == 1
    )
    assert sample(registry, "decisions_total", **allowed) is None
    await asyncio.sleep(0)
    assert sample(registry, "decisions_total", **allowed) == 3
    observer.on_decision(local)
    await asyncio.sleep(0)
    assert sample(registry, "decisions_total", **allowed) == 4
