"""Configuration of the sidecar's outbound resilience: breakers, retries, budgets, ejection.

``resilience.defaults`` applies to every upstream service; ``resilience.services.<name>``
overrides any part of it for one service (sections are merged key by key).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from mesh.canary_config import CanaryConfig
from mesh.config.overrides import check_overrides, policy_for
from mesh.config.types import Duration, Frozen
from mesh.hash_policy_config import HashSourceConfig
from mesh.resilience.breaker_config import BreakerConfig
from mesh.resilience.retry_config import RetryKeys


class RetryConfig(RetryKeys):
    per_try_timeout: Duration = 2.0
    """Longest one attempt waits for its answer (and no longer than the deadline)."""
    hedge_on_per_try_timeout: bool = False
    """Hedge instead of abandoning: an idempotent call with a replayable body whose
    attempt has no answer after ``per_try_timeout`` starts another attempt on another
    instance while the first runs on, and takes the first usable answer
    (:mod:`sidecar.hedging`). Each hedge is an attempt and spends the retry budget."""


class OutlierConfig(Frozen):
    max_ejection_share: float = Field(default=0.5, ge=0, le=1)
    """Never eject more than this share of a service's instances (at least one)."""
    instance_breakers: bool = True


class UpstreamPolicy(Frozen):
    breaker: BreakerConfig = BreakerConfig()
    retries: RetryConfig = RetryConfig()
    outlier: OutlierConfig = OutlierConfig()
    max_requests: int | None = Field(default=None, ge=1)
    """The app's calls to the service that may be in flight at once (a bulkhead: Envoy's
    cluster ``max_requests``); one more is answered 503 at once. None: no limit."""
    hash_policy: tuple[HashSourceConfig, ...] | None = Field(default=None, min_length=1)
    """Session affinity for the app's calls to the service, as an edge route's
    (:mod:`mesh.hash_policy`): calls with the same key go to the same instance, by
    Maglev. The first source a call carries gives its key (``source_ip`` is the app's
    own address: every call of this sidecar to one instance); a call carrying none is
    balanced as any other. None: no affinity."""
    canary: CanaryConfig | None = None
    """A canary release of the service, for the app's calls, as an edge route's
    (:mod:`mesh.canary`): ``weight`` percent of the calls go to its instances tagged
    ``tag``, the rest to the others (a side with no healthy instance sends its share to
    the other); ``header`` lets a call pick its side. None: every healthy instance."""


class ResilienceConfig(Frozen):
    defaults: UpstreamPolicy = UpstreamPolicy()
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-service overrides, e.g. ``inventory: {breaker: {min_calls: 5}}``."""

    @model_validator(mode="after")
    def _validate_overrides(self) -> ResilienceConfig:
        check_overrides(self.defaults, self.services)
        return self

    def policy_for(self, service: str) -> UpstreamPolicy:
        return policy_for(self.defaults, self.services.get(service))

    def max_requests(self) -> dict[str, int | None]:
        """Each overridden service's ``max_requests`` (the others have the defaults')."""
        return {name: self.policy_for(name).max_requests for name in self.services}


class InboundLimitConfig(Frozen):
    max_in_flight: int = Field(default=256, ge=1)
    """Requests the local app may hold at once."""
    max_queue: int = Field(default=128, ge=0)
    """Requests that may wait for a slot; beyond that, 503 at once."""
    queue_timeout: Duration = 0.1
    """How long a request may wait for a slot before 503."""
    retry_after: int = Field(default=1, ge=1)
