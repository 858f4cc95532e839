"""The sidecar's configuration file: schema and loading."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from discovery.settings import ConsulSettings, DiscoverySettings
from mesh.config.loader import load_config
from mesh.config.overrides import policy_for
from mesh.config.sections import AdminConfig, LoggingConfig, ProxyConfig, ShutdownConfig
from mesh.config.types import Duration, Frozen, Port, split_host_port
from mesh.faults.config import FaultConfig
from mesh.mtls.config import SidecarMeshTlsConfig, mesh_tls_problem
from mesh.telemetry.config import TelemetryConfig
from sidecar.identity_config import SidecarIdentityConfig
from sidecar.resilience_config import InboundLimitConfig, ResilienceConfig

_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A service a sidecar may call: any Consul service name (dots too, unlike its own)."""


class ServiceConfig(Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    id: str | None = None
    """Instance id in Consul; default ``<name>-<hostname>-<inbound port>``."""
    address: str = "127.0.0.1"
    """The address other proxies reach this sidecar's inbound listener at."""
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = Field(default_factory=dict)


class InboundConfig(Frozen):
    host: str = "0.0.0.0"
    port: Port = 15000
    trusted_hops: int = Field(default=1, ge=0, le=10)
    """Inbound traffic comes from the edge or another sidecar, whose X-Forwarded-* we keep."""
    limit: InboundLimitConfig = InboundLimitConfig()


class OutboundConfig(Frozen):
    host: str = "127.0.0.1"
    port: Port = 15001
    faults: dict[str, FaultConfig] = Field(default_factory=dict)
    """Delays and aborts injected into the app's calls, per destination service (chaos
    testing, :mod:`sidecar.filters.faults`), e.g. ``inventory: {abort: {status: 503,
    percent: 5}}``; ``"*"``: every service without an entry of its own."""

    @field_validator("faults")
    @classmethod
    def _service_names(cls, value: dict[str, FaultConfig]) -> dict[str, FaultConfig]:
        for name in value:
            if name != "*" and not _SERVICE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is neither a service name nor '*'")
        return value


class AppConfig(Frozen):
    address: str = "127.0.0.1:8000"
    """Where the local app listens (``host:port``)."""
    health_path: str = "/health"

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _ = split_host_port(value, 80)
        if not host:
            raise ValueError("expected host:port")
        return value

    @field_validator("health_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return split_host_port(self.address, 80)


class SidecarAdminConfig(AdminConfig):
    port: Port = 15002


class RegistrationConfig(Frozen):
    enabled: bool = True
    check_interval: Duration = 1.0
    check_timeout: Duration = 1.0
    deregister_critical_after: Duration = 60.0
    resync_interval: Duration = 5.0
    """How often the sidecar checks that the agent still has its instance (and re-registers)."""


class SidecarConfig(Frozen):
    service: ServiceConfig
    app: AppConfig = AppConfig()
    inbound: InboundConfig = InboundConfig()
    outbound: OutboundConfig = OutboundConfig()
    admin: SidecarAdminConfig = SidecarAdminConfig()
    consul: ConsulSettings = Field(default_factory=ConsulSettings)
    discovery: DiscoverySettings = DiscoverySettings()
    registration: RegistrationConfig = RegistrationConfig()
    proxy: ProxyConfig = ProxyConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    identity: SidecarIdentityConfig = SidecarIdentityConfig()
    """Inbound check of the edge-signed caller identity; off by default."""
    shutdown: ShutdownConfig = ShutdownConfig()
    logging: LoggingConfig = LoggingConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    mesh_tls: SidecarMeshTlsConfig = SidecarMeshTlsConfig()
    """Mutual TLS on the inbound listener and to upstream sidecars (Consul Connect)."""

    @model_validator(mode="after")
    def _mesh_tls_possible(self) -> SidecarConfig:
        problem = mesh_tls_problem(self.mesh_tls, self.discovery.provider, self.proxy.transport)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _hedging_possible(self) -> SidecarConfig:
        # The attempts of a hedged call run at once and write their trace context and
        # deadline on the call's one set of headers; the fast transport renders its
        # request head before it first waits, the aiohttp client only once connected,
        # by which time a hedge may have written its own.
        if self.proxy.transport == "fast":
            return self
        resilience = self.resilience
        policies = {"defaults": resilience.defaults} | {
            f"services.{name}": policy_for(resilience.defaults, override)
            for name, override in resilience.services.items()
        }
        for where, policy in policies.items():
            if policy.retries.hedge_on_per_try_timeout:
                raise ValueError(
                    f"resilience.{where}.retries.hedge_on_per_try_timeout needs "
                    "proxy.transport: fast (the aiohttp client sends a hedged call's "
                    "attempts with each other's trace context)"
                )
        return self

    def instance_id(self, inbound_port: int) -> str:
        return self.service.id or f"{self.service.name}-{socket.gethostname()}-{inbound_port}"


def load_sidecar_config(path: str | Path) -> SidecarConfig:
    """Raises mesh.config.errors.ConfigError naming the file, key path and problem."""
    return load_config(path, SidecarConfig)
