"""Configuration sections the edge and the sidecar both have."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from mesh.config.overrides import check_overrides, policy_for
from mesh.config.types import Duration, Frozen, Port, PositiveDuration
from mesh.http.upgrade import DEFAULT_PROTOCOLS, allowed_protocols
from mesh.locality import Count, LocalityPolicy, LocalityRouter


class ProxyConfig(Frozen):
    connect_timeout: Duration = 1.0
    """Time allowed for the TCP connect to an instance."""
    response_timeout: Duration = 15.0
    """Time allowed for the response headers, and between reads of the body."""
    connect_attempts: int = Field(default=3, ge=1, le=10)
    """Instances tried when connects fail (safe for any method: nothing was sent)."""
    trusted_hops: int = Field(default=0, ge=0, le=10)
    """Proxies in front of this one whose X-Forwarded-* headers are believed."""
    load_balancer: Literal["round_robin", "least_request"] = "round_robin"
    pool_size_per_host: int = Field(default=256, ge=1)
    """Idle keep-alive connections kept per upstream address."""
    transport: Literal["fast", "aiohttp"] = "fast"
    """Upstream HTTP client: ``fast`` (httptools on asyncio protocols) or ``aiohttp``."""
    upgrades: Annotated[frozenset[str], AfterValidator(allowed_protocols)] = DEFAULT_PROTOCOLS
    """Protocols a request may switch to (``Upgrade``), tunnelled byte for byte once the
    service answers 101; ``[]`` turns switching off. Needs the ``fast`` transport."""
    tunnel_idle_timeout: PositiveDuration = 300.0
    """A switched connection with no byte either way for this long is closed."""


class AdminConfig(Frozen):
    host: str = "127.0.0.1"
    port: Port = 9901


class ShutdownConfig(Frozen):
    drain_delay: Duration = 0.5
    """After readiness fails and the instance deregisters, before listeners close."""
    timeout: Duration = 30.0
    """How long in-flight requests may take to finish once listeners have closed."""


class LoggingConfig(Frozen):
    level: Literal["debug", "info", "warning", "error"] = "info"


class LocalityThresholds(Frozen):
    """What a service's locality-aware routing may change: on or off, and when the
    proxy's zone (or region) has enough instances to take all of its requests."""

    enabled: bool = True
    """False: this service's requests go to any instance, as without locality."""
    min_healthy: int = Field(default=1, ge=1)
    """The zone (then the region) takes the requests only with at least this many
    instances left after canary and outlier ejection..."""
    min_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """... and at least this share of those instances (0.3: 30%)."""


class LocalityConfig(LocalityThresholds):
    """``discovery.locality``: where this proxy runs, for zone-aware routing
    (:mod:`mesh.locality`). Absent: routing ignores zones."""

    zone: str = Field(min_length=1)
    region: str = ""
    """The proxy's region. "": when its zone cannot take a request, any instance
    does, without preferring a region."""
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-service overrides of ``enabled``, ``min_healthy``, ``min_share``."""

    @model_validator(mode="after")
    def _check_services(self) -> LocalityConfig:
        check_overrides(self._thresholds(), self.services)
        return self

    def router(self, count: Count | None = None) -> LocalityRouter | None:
        """The router this section makes (None when every service has locality off)."""
        default = self.default_policy()
        policies = self.service_policies()
        if default is None and all(p is None for p in policies.values()):
            return None
        return LocalityRouter(default, policies, count)

    def _thresholds(self) -> LocalityThresholds:
        return LocalityThresholds.model_validate(
            self.model_dump(include={"enabled", "min_healthy", "min_share"})
        )

    def _policy(self, thresholds: LocalityThresholds) -> LocalityPolicy | None:
        if not thresholds.enabled:
            return None
        return LocalityPolicy(self.zone, self.region, thresholds.min_healthy, thresholds.min_share)

    def default_policy(self) -> LocalityPolicy | None:
        """The policy of services without an override (None: ``enabled: false``)."""
        return self._policy(self._thresholds())

    def service_policies(self) -> dict[str, LocalityPolicy | None]:
        """Each overridden service's policy (None: locality off for it)."""
        defaults = self._thresholds()
        return {n: self._policy(policy_for(defaults, o)) for n, o in self.services.items()}
