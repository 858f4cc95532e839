"""Configuration sections the edge and the sidecar both have."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from mesh.config.types import Duration, Frozen, Port, PositiveDuration
from mesh.http.upgrade import DEFAULT_PROTOCOLS, allowed_protocols


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
