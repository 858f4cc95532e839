"""The ``mesh_tls`` configuration section of the edge and of the sidecar."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mesh.config.types import Frozen, PositiveDuration


class MeshTlsConfig(Frozen):
    """Mutual TLS with certificates from Consul's Connect CA (off by default)."""

    enabled: bool = False
    require: bool = False
    """Reach upstream instances over mesh TLS only: an instance not registered as
    Connect-native is skipped (as if it refused the connection) instead of being
    called over plain HTTP."""
    initial_fetch_timeout: PositiveDuration = 15.0
    """How long to wait for the first certificate before warning (and waiting on):
    a sidecar's inbound listener opens only once it has one."""


class EdgeMeshTlsConfig(MeshTlsConfig):
    service: str = Field(default="meshgate-edge", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    """The service name the edge's certificate is issued for: the *source* name
    sidecars' intentions see for the edge's calls."""


class SidecarMeshTlsConfig(MeshTlsConfig):
    """The certificate is issued for ``service.name``; the inbound listener takes only
    clients with a certificate from the same CA, and Consul's intentions decide
    which calling services it serves."""

    default_intention: Literal["allow", "deny"] = "allow"
    """When no intention matches a caller: ``allow`` as Consul does with ACLs off;
    set ``deny`` where Consul's ACL default policy is deny."""
    mode: Literal["strict", "permissive"] = "strict"
    """Callers over plain HTTP (the inbound port takes both; the first byte of a
    connection tells them apart): ``strict`` answers them 403 ``mesh-tls-required``;
    ``permissive`` serves them, unidentified and past the intentions, for a migration
    into mesh TLS (Istio's PERMISSIVE, Consul's permissive mutual TLS mode)."""


def mesh_tls_problem(mesh_tls: MeshTlsConfig, provider: str, transport: str) -> str | None:
    """Why ``mesh_tls`` cannot work with the process's discovery ``provider`` and upstream
    ``transport`` (the message names the key), or None when it can."""
    if not mesh_tls.enabled:
        return None
    if provider != "consul":
        return (
            "mesh_tls.enabled: mesh TLS takes its certificates from Consul's Connect CA, "
            "so it needs discovery.provider: consul"
        )
    if transport != "fast":
        return "mesh_tls.enabled: mesh TLS needs proxy.transport: fast"
    return None
