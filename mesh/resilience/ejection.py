"""Which instances of a service may receive traffic (outlier ejection), purely.

Two things keep an instance out of rotation:

- **ejection**: its circuit breaker is OPEN (a HALF_OPEN instance stays
  eligible, so its trial calls can reach it);
- **avoidance**: it answered with backpressure (429/503 + ``Retry-After``) and
  the time it asked for has not passed.

Two guards keep a bad signal from emptying the pool (both from Envoy):

- **ejection cap**: at most ``max_ejection_share`` of the instances are
  ejected, and at least one when the share is positive. Beyond the cap the
  instances ejected *earliest* stay out and the most recent ones are readmitted,
  which is Envoy's rule (once the cap is reached it ejects no more hosts): the
  pool shrinks in the order the evidence arrived, not by whoever tripped last.
  Ties on the ejection time go to the order of ``instances``.
- **panic mode**: if ejection and avoidance together would leave no instance,
  every instance is eligible, since sending to a suspect instance beats
  failing every request locally.

The cap bounds ejection only: avoidance was asked for by the instance itself,
and is overridden only by panic mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Absorbs float error so that e.g. 0.29 * 100 (28.999999999999996) gives 29.
_EPSILON = 1e-9

MAX_AVOIDANCE_S = 300.0
"""The longest an instance is avoided for, whatever its ``Retry-After`` asks: a bad or
hostile value must not take it out of rotation for hours."""


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The result of `select_eligible`.

    Attributes:
        eligible: instances that may receive traffic, in the order given.
        ejected: breaker-open instances kept out by the ejection rule.
        readmitted: breaker-open instances let back in because of the cap.
        avoided: instances kept out by backpressure, not also ejected.
        panic: True when nothing would have been left, so ``eligible`` is every
            instance; ``ejected`` and ``avoided`` then say what was overridden.
    """

    eligible: tuple[str, ...]
    ejected: frozenset[str]
    readmitted: frozenset[str]
    avoided: frozenset[str]
    panic: bool


def max_ejections(instance_count: int, max_ejection_share: float) -> int:
    """How many of ``instance_count`` instances may be ejected at once.

    ``floor(share * count)``, but at least 1 when ``share > 0`` and there is an
    instance (Envoy ejects at least one host whatever the percentage, so small
    pools still shed a broken instance); 0 when ``share == 0``.
    """
    if max_ejection_share <= 0 or instance_count == 0:
        return 0
    return max(1, math.floor(max_ejection_share * instance_count + _EPSILON))


def select_eligible(
    instances: Sequence[str],
    *,
    ejected_at: Mapping[str, float],
    avoid_until: Mapping[str, float],
    now: float,
    max_ejection_share: float = 0.5,
) -> Eligibility:
    """Split a service's instances into eligible and excluded ones.

    Args:
        instances: the service's instance ids, unique, in the order that
            ``eligible`` should keep (e.g. the snapshot's order).
        ejected_at: for each instance whose breaker is OPEN, when it was
            ejected (`CircuitBreaker.tripped_at`). Unknown ids are ignored.
        avoid_until: for instances that sent backpressure, the time (same clock
            as ``now``) until which to avoid them. Past entries and unknown ids
            are ignored, so the caller may prune lazily.
        now: the current time on the clock of ``avoid_until``.
        max_ejection_share: in [0, 1]; see `max_ejections`.

    Raises:
        ValueError: for a share outside [0, 1] or duplicate instance ids.
    """
    if not (0 <= max_ejection_share <= 1):
        raise ValueError(f"max_ejection_share must be in [0, 1], got {max_ejection_share!r}")
    position = {instance: index for index, instance in enumerate(instances)}
    if len(position) != len(instances):
        raise ValueError("instance ids must be unique")

    candidates = sorted(
        (instance for instance in instances if instance in ejected_at),
        key=lambda instance: (ejected_at[instance], position[instance]),
    )
    limit = max_ejections(len(instances), max_ejection_share)
    ejected = frozenset(candidates[:limit])
    readmitted = frozenset(candidates[limit:])
    avoided = frozenset(
        instance
        for instance in instances
        if instance not in ejected and avoid_until.get(instance, -math.inf) > now
    )

    eligible = tuple(
        instance for instance in instances if instance not in ejected and instance not in avoided
    )
    panic = not eligible and bool(instances)
    return Eligibility(
        eligible=tuple(instances) if panic else eligible,
        ejected=ejected,
        readmitted=readmitted,
        avoided=avoided,
        panic=panic,
    )
