"""An auth service endpoint found in the catalog snapshot on every call.

For ``jwks.service`` / ``introspection.service``: each call picks the next
healthy instance (round robin) of the named service, so the edge follows the
auth service as it moves, like any other traffic. The endpoint is either a
URL for aiohttp (:class:`ServiceUrl`, plain HTTP) or, when the edge has mesh
TLS on, a call through the edge's own transport (:class:`ServiceCall`), which
reaches Connect-native instances over mutual TLS and checks their certificate
before sending anything.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge.auth.service_fetch import InstanceAnswer, fetch_from_instance
from mesh.mtls.contexts import MeshTls
from mesh.snapshot import Instance, Snapshot
from mesh.transport.base import UpstreamTransport
from mesh.transport.h1_head import authority


class NoHealthyInstance(Exception):
    """The service has no healthy instance in the current snapshot."""


class ServiceUrl:
    """An async callable returning ``http://<healthy instance><path>``.

    Raises NoHealthyInstance when there is none (a fetch then counts as failed
    and the last good answers keep serving).
    """

    def __init__(self, snapshot: Callable[[], Snapshot], service: str, path: str) -> None:
        self._snapshot = snapshot
        self.service = service
        self.path = path
        self._turn = itertools.count()

    def instance(self) -> Instance:
        """The next healthy instance (round robin); NoHealthyInstance when there is none."""
        entry = self._snapshot().service(self.service)
        instances = entry.healthy if entry is not None else ()
        if not instances:
            raise NoHealthyInstance(f"no healthy instance of {self.service!r}")
        return instances[next(self._turn) % len(instances)]

    async def __call__(self) -> str:
        instance = self.instance()
        return f"http://{authority(instance.address, instance.port)}{self.path}"

    def describe(self) -> str:
        return f"service {self.service} at {self.path}"


@dataclass(frozen=True, slots=True)
class ServiceCall:
    """``endpoint``'s next healthy instance, called through ``transport`` with
    :func:`edge.auth.service_fetch.fetch_from_instance` (mutual TLS to Connect-native
    instances per ``mesh_tls``). Raises NoHealthyInstance, the transport's errors,
    and BodyTooLarge, as that function does."""

    endpoint: ServiceUrl
    transport: UpstreamTransport
    mesh_tls: MeshTls | None

    async def __call__(
        self,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        timeout_s: float,
        max_body_bytes: int,
    ) -> InstanceAnswer:
        return await fetch_from_instance(
            self.transport,
            self.endpoint.instance(),
            self.mesh_tls,
            method=method,
            target=self.endpoint.path,
            headers=headers,
            body=body,
            timeout_s=timeout_s,
            max_body_bytes=max_body_bytes,
        )

    def describe(self) -> str:
        return f"{self.endpoint.describe()} (mesh TLS to Connect-native instances)"
