"""Outbound routing: which service an app's call through the sidecar is for.

Two forms, checked in this order:

1. ``Host: <service>`` (or ``<service>.mesh``, with or without a port) where
   the service is in the catalog: the path is sent unchanged. This is what an
   app gets by using the sidecar as its HTTP proxy, or by setting Host.
2. ``http://127.0.0.1:15001/<service>/<rest>``: the first path segment names
   the service and ``/<rest>`` is sent.

Anything else is a 404 problem naming the service that was looked for.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.snapshot import Snapshot


class OutboundRoutingFilter:
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        services = self._snapshot().services
        host = (ex.request.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0].removesuffix(".mesh")
        if name in services:
            ex.service = name
        else:
            first, _, rest = ex.path[1:].partition("/")
            if first not in services:
                looked_for = first or name
                return ex.problem(
                    404,
                    "Unknown service",
                    f"no service named {looked_for!r} in the catalog",
                    slug="unknown-service",
                    extra={"service": looked_for},
                )
            ex.service = first
            ex.upstream_path = "/" + rest
        ex.route = f"outbound:{ex.service}"
        return await next_handler(ex)
