"""meshgate processes for the benchmark: the edge and a sidecar, found through Consul."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.context import BenchContext, get_status
from demo.processes import ManagedProcess, free_port
from mesh.config.merge import deep_merge

UPSTREAM_SERVICE = "bench-upstream"
SIDECAR_SERVICE = "bench-app"


@dataclass(frozen=True)
class Node:
    """A running edge or sidecar: its traffic port, admin port and process."""

    port: int
    admin: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def register_upstream(ctx: BenchContext) -> str:
    """Put the upstream nginx in Consul (no check, so it is passing); return the service name."""
    service_id = f"{UPSTREAM_SERVICE}-1"
    ctx.register_service(UPSTREAM_SERVICE, service_id, ctx.upstream_port)
    ctx.wait_for(lambda: service_id in ctx.passing_ids(UPSTREAM_SERVICE), "upstream in Consul")
    return UPSTREAM_SERVICE


def wait_ready(ctx: BenchContext, node: Node) -> None:
    ctx.wait_for(
        lambda: get_status(f"http://127.0.0.1:{node.admin}/readyz") == 200,
        f"{node.process.name} /readyz",
        [node.process],
    )


@dataclass(frozen=True)
class SidecarNode:
    """A running sidecar: the service it registered, its ports and process."""

    service: str
    inbound: int
    outbound: int
    process: ManagedProcess


def start_sidecar(
    ctx: BenchContext, extra: Mapping[str, Any] | None = None, service: str = SIDECAR_SERVICE
) -> SidecarNode:
    """A sidecar for the upstream nginx, registered in Consul as ``service``.

    Returns once it is ready and its instance passes in Consul. Two scenarios up at once
    (``bench.ab``) need a service each: an edge would otherwise balance over both
    scenarios' sidecars.
    """
    inbound, outbound, admin = free_port(), free_port(), free_port()
    instance_id = f"{service}-{inbound}"
    config = deep_merge(
        {
            "service": {"name": service, "id": instance_id, "address": "127.0.0.1"},
            "app": {"address": f"127.0.0.1:{ctx.upstream_port}", "health_path": "/"},
            "inbound": {"host": "127.0.0.1", "port": inbound},
            "outbound": {"host": "127.0.0.1", "port": outbound},
            "admin": {"host": "127.0.0.1", "port": admin},
            "consul": {"address": ctx.consul.address, "wait": "10s"},
            "registration": {"enabled": True, "check_interval": "1s"},
            "shutdown": {"drain_delay": "100ms", "timeout": "5s"},
        },
        extra,
    )
    proc = ctx.meshgate("sidecar", ctx.unique_name("sidecar"), config)
    node = Node(inbound, admin, proc)
    wait_ready(ctx, node)
    ctx.wait_for(
        lambda: instance_id in ctx.passing_ids(service),
        f"{instance_id} passing in Consul",
        [proc],
    )
    return SidecarNode(service, inbound, outbound, proc)


def start_edge(
    ctx: BenchContext, routes: list[dict[str, Any]], extra: Mapping[str, Any] | None = None
) -> Node:
    """An edge with these routes and ``extra`` merged into its config; returns once ready."""
    port, admin = free_port(), free_port()
    config = deep_merge(
        {
            "listen": {"host": "127.0.0.1", "port": port},
            "admin": {"host": "127.0.0.1", "port": admin},
            "consul": {"address": ctx.consul.address, "wait": "10s"},
            "routes": routes,
            "shutdown": {"drain_delay": "100ms", "timeout": "5s"},
        },
        extra,
    )
    node = Node(port, admin, ctx.meshgate("edge", ctx.unique_name("edge"), config))
    wait_ready(ctx, node)
    return node
