"""Prometheus series of the sidecar's outbound resilience: breakers, retries, budgets.

Read from the guards at scrape time (:class:`ResilienceCollector`), so the
request path pays nothing for them and a breaker's state is the one it has
now (an OPEN breaker whose open period has passed reads as half-open):

- ``meshgate_breaker_state{service, instance_id}``: 0 closed, 1 half-open,
  2 open; ``instance_id=""`` is the service-wide breaker;
- ``meshgate_retries_total{service}``: retries granted by the budget;
- ``meshgate_retry_budget_exhausted_total{service}``: retries the budget refused;
- ``meshgate_retry_budget_available{service}``: retries the budget would grant now;
- ``meshgate_hedges_total{service, outcome}``: hedges started
  (``hedge_on_per_try_timeout``), counted once their call ended: ``outcome="won"``
  when the hedge's answer was the call's, ``"lost"`` otherwise. Each hedge also took
  one retry from the budget, so it is in ``meshgate_retries_total`` too.

Counted as they happen (:class:`BreakerTransitions`, the guards'
``on_transition`` callback) and reported by the same collector, after the
states were read (so a transition that reading caused is in the same scrape):
``meshgate_breaker_transitions_total{service, instance_id, state}``, ``state``
being the state entered.

The label is ``instance_id``, not ``instance``, which Prometheus reserves for
the scraped target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mesh.resilience.breaker import BreakerState
from sidecar.guards import GuardRegistry

STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class BreakerTransitions:
    """An ``on_transition`` callback for :class:`~sidecar.guards.GuardRegistry`: counts changes."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        """(service, instance id or "", state entered) → transitions."""

    def __call__(
        self, service: str, instance: str | None, old: BreakerState, new: BreakerState
    ) -> None:
        self.counts[(service, instance or "", new.value)] += 1


class ResilienceCollector(Collector):
    def __init__(self, guards: GuardRegistry, transitions: BreakerTransitions) -> None:
        self._guards = guards
        self._transitions = transitions

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "meshgate_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open "
            '(instance_id="" is the service-wide breaker).',
            labels=["service", "instance_id"],
        )
        retries = CounterMetricFamily(
            "meshgate_retries", "Retries granted by the retry budget.", labels=["service"]
        )
        exhausted = CounterMetricFamily(
            "meshgate_retry_budget_exhausted",
            "Retries refused because the retry budget was spent.",
            labels=["service"],
        )
        available = GaugeMetricFamily(
            "meshgate_retry_budget_available",
            "Retries the budget would grant now.",
            labels=["service"],
        )
        hedges = CounterMetricFamily(
            "meshgate_hedges",
            "Hedged attempts started on a per-try timeout, by whether their answer was "
            "the call's (won) or not (lost).",
            labels=["service", "outcome"],
        )
        for guard in self._guards.guards():
            service = guard.service
            state.add_metric([service, ""], STATE_VALUES[guard.breaker.state])
            for instance_id, breaker in sorted(guard.instance_breakers.items()):
                state.add_metric([service, instance_id], STATE_VALUES[breaker.state])
            retries.add_metric([service], guard.budget.retries_total)
            exhausted.add_metric([service], guard.budget.exhausted_total)
            available.add_metric([service], guard.budget.available())
            # Series for the services that hedge (from zero), not for every service.
            if (
                guard.policy.retries.hedge_on_per_try_timeout
                or guard.hedges_won
                or guard.hedges_lost
            ):
                hedges.add_metric([service, "won"], guard.hedges_won)
                hedges.add_metric([service, "lost"], guard.hedges_lost)
        transitions = CounterMetricFamily(
            "meshgate_breaker_transitions",
            "Circuit breaker state changes, by the state entered.",
            labels=["service", "instance_id", "state"],
        )
        for labels, count in sorted(self._transitions.counts.items()):
            transitions.add_metric(list(labels), count)
        yield from (state, retries, exhausted, available, hedges, transitions)
