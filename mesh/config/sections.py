"""Configuration sections the edge and the sidecar both have."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from mesh.admin_token import ENV_NAME, AdminToken, TokenUnavailable, read_token_env, read_token_file
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
    """The admin listener, and the bearer token that guards it (:mod:`mesh.admin_auth`)."""

    host: str = "127.0.0.1"
    port: Port = 9901
    token_file: str | None = None
    """A file holding the token every admin request must carry (``Authorization: Bearer``)
    except the probes (and ``/metrics`` unless ``protect_metrics``); read at load, so at
    start and on each reload. null: no token, the listener open to whoever reaches it."""
    token_env: str | None = Field(default=None, pattern=ENV_NAME)
    """Or the name of an environment variable holding the token (never the token: it does
    not belong in this file). Not both."""
    protect_metrics: bool = False
    """``/metrics`` needs the token too (Prometheus sends it with ``authorization:
    {credentials_file: ...}``); needs a token."""
    _token: AdminToken | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_token(self) -> AdminConfig:
        if self.token_file is not None and self.token_env is not None:
            raise ValueError("set either token_file or token_env, not both")
        try:
            if self.token_file is not None:
                self._token = read_token_file(self.token_file)
            elif self.token_env is not None:
                self._token = read_token_env(self.token_env)
        except TokenUnavailable as exc:
            # Raised as a ValidationError of its own so that the key path is the key's
            # (admin.token_file), not the section's: pydantic prefixes the section's path.
            error = PydanticCustomError("admin_token", "{problem}", {"problem": exc.problem})
            details = InitErrorDetails(type=error, loc=(exc.key,), input=getattr(self, exc.key))
            raise ValidationError.from_exception_data(type(self).__name__, [details]) from None
        if self.protect_metrics and self._token is None:
            raise ValueError("protect_metrics needs a token (token_file or token_env)")
        return self

    @property
    def token(self) -> AdminToken | None:
        """The token read from ``token_file`` or ``token_env``; None when neither is set."""
        return self._token


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
