"""The edge registers itself in Consul, so that edges can count each other.

Each edge is an instance of service ``meshgate-edge`` (``registration.name``)
with an HTTP check against its admin listener's ``/readyz``: it passes once
the edge serves, and fails as soon as the edge starts draining. The rate-limit
fallback divides every limit by the number of passing instances
(:mod:`edge.ratelimit.instances`). The instance is deregistered first thing on
shutdown; one that dies without deregistering turns critical at its next check
and is reaped after a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import consul.aio
from pydantic import field_validator

from discovery.consul_client import make_consul
from discovery.registration import Registration, RegistrationSpec
from discovery.settings import ConsulSettings
from mesh.config.types import Duration, Frozen

DEFAULT_SERVICE = "meshgate-edge"


class EdgeRegistrationConfig(Frozen):
    """How the edge appears in Consul."""

    enabled: bool = True
    name: str = DEFAULT_SERVICE
    """Service name; every edge that shares rate limits must use the same one."""
    address: str = "127.0.0.1"
    """Address registered, and used by Consul's check to reach the admin
    listener: with a Consul agent on another host (containers), a name that
    host can reach, e.g. the edge's service name."""
    check_interval: Duration = 1.0
    """How often Consul checks ``/readyz``."""

    @field_validator("name", "address")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


def registration_spec(
    config: EdgeRegistrationConfig, *, listen_port: int, admin_port: int
) -> RegistrationSpec:
    """The instance: id ``<name>-<hostname>-<listen port>``, checked at ``/readyz``."""
    interval = f"{max(1, round(config.check_interval * 1000))}ms"
    return RegistrationSpec(
        name=config.name,
        service_id=f"{config.name}-{socket.gethostname()}-{listen_port}",
        address=config.address,
        port=listen_port,
        check_url=f"http://{config.address}:{admin_port}/readyz",
        tags=("meshgate", "edge"),
        meta={"admin_port": str(admin_port)},
        check_interval=interval,
        check_timeout=interval,
    )


class EdgeRegistration:
    """Owns the Consul client and the keeper of the edge's registration.

    ``start`` neither fails nor waits: the first registration runs in the
    background and an unreachable Consul is retried there, so the edge serves
    whatever Consul does. ``stop`` deregisters (at most about 2 s) and closes
    the client. Both do nothing when registration is disabled.
    """

    def __init__(
        self,
        config: EdgeRegistrationConfig,
        consul_settings: ConsulSettings,
        *,
        listen_port: int,
        admin_port: int,
    ) -> None:
        self._client: consul.aio.Consul | None = None
        self._registration: Registration | None = None
        self._starting: asyncio.Task[None] | None = None
        if config.enabled:
            self._client = make_consul(consul_settings)
            spec = registration_spec(config, listen_port=listen_port, admin_port=admin_port)
            self._registration = Registration(self._client, spec)

    async def start(self) -> None:
        if self._registration is not None:
            self._starting = asyncio.create_task(
                self._registration.start(), name="edge-registration"
            )

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self._registration is not None:
            await self._registration.deregister()
        if self._client is not None:
            await self._client.close()
