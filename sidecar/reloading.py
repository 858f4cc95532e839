"""What a sidecar applies when its config file is read again (SIGHUP, see
:mod:`mesh.config.reload`): the service's Consul tags and meta, the resilience
policies, the outbound faults, the inbound cap, the mesh TLS mode, and the logging level (the rest
of ``mesh_tls`` that applies live is :class:`discovery.connect_ca.ConnectMeshTls`'s).
Everything else waits for a restart."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from discovery.registration import Registration
from mesh.config.reload import Reload
from mesh.upstream_limits import UpstreamLimits
from sidecar.config import SidecarConfig
from sidecar.filters.faults import OutboundFaults
from sidecar.filters.inbound_limit import InboundLimitFilter
from sidecar.filters.intentions import IntentionFilter
from sidecar.guards import GuardRegistry

log = logging.getLogger(__name__)


class RegistrationReload:
    """``service.tags`` and ``service.meta``: the instance registered again with them (a
    canary promoted by its tag, a route declared in meta), as soon as the agent takes it.
    """

    def __init__(self, registration: Callable[[], Registration | None]) -> None:
        """``registration``: the instance's registration once made (None before, or
        when registration is off: then these keys wait for a restart)."""
        self._registration = registration

    def prepare_reload(self, config: SidecarConfig) -> Reload | None:
        registration = self._registration()
        if registration is None:
            return None
        spec = dataclasses.replace(
            registration.spec, tags=tuple(config.service.tags), meta=dict(config.service.meta)
        )

        def commit() -> None:
            if spec != registration.spec:
                registration.update(spec)

        return Reload(("service.tags", "service.meta"), commit)


class ResilienceReload:
    """``resilience``: new policies; the upstreams whose policy changed start afresh, and
    new ``max_requests`` apply from the next call (calls in flight stay counted)."""

    def __init__(self, guards: GuardRegistry, limits: UpstreamLimits) -> None:
        self._guards = guards
        self._limits = limits

    def prepare_reload(self, config: SidecarConfig) -> Reload:
        resilience = config.resilience

        def commit() -> None:
            self._limits.configure(resilience.defaults.max_requests, resilience.max_requests())
            replaced = self._guards.reconfigure(resilience)
            if replaced:
                log.info(
                    "resilience policy changed for %s: breakers and retry budget start afresh",
                    ", ".join(replaced),
                )

        return Reload(("resilience",), commit)


class OutboundFaultsReload:
    """``outbound.faults``: the app's calls that start after the reload get the new faults
    (added, changed or removed); calls under a fault keep theirs."""

    def __init__(self, faults: OutboundFaults) -> None:
        self._faults = faults

    def prepare_reload(self, config: SidecarConfig) -> Reload:
        prepared = self._faults.prepare(config.outbound.faults)
        return Reload(("outbound.faults",), lambda: self._faults.install(prepared))


class InboundLimitReload:
    """``inbound.limit``: the cap, the queue and its timeout, ``Retry-After``, applied
    while requests hold and wait for slots (see :mod:`sidecar.filters.inbound_limit`)."""

    def __init__(self, limit: InboundLimitFilter) -> None:
        self._limit = limit

    def prepare_reload(self, config: SidecarConfig) -> Reload:
        settings = config.inbound.limit
        return Reload(("inbound.limit",), lambda: self._limit.reconfigure(settings))


class MeshTlsModeReload:
    """``mesh_tls.mode``: whether callers over plain HTTP are served (``permissive``) or
    refused (``strict``), from the next request on; the inbound port takes both either
    way, so nothing else changes."""

    def __init__(self, intentions: IntentionFilter) -> None:
        self._intentions = intentions

    def prepare_reload(self, config: SidecarConfig) -> Reload | None:
        m = config.mesh_tls
        if not m.enabled:  # turning mesh TLS off waits for a restart
            return None
        return Reload(("mesh_tls.mode",), lambda: setattr(self._intentions, "mode", m.mode))
