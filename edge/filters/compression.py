"""Marks each routed request's answer as compressible (:mod:`mesh.http.compression`)."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.http.compression import ResponseCompression


class CompressionFilter:
    """After routing: sets ``ex.compression`` unless the route says ``compression: false``.

    The proxy decides once the service's status and headers are in; this filter only
    says which decision applies, so a request costs an attribute store."""

    def __init__(self, compression: ResponseCompression) -> None:
        self._compression = compression

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        route = ex.attrs.get("route")
        if route is None or route.options.get("compression", True):
            ex.compression = self._compression
        return next_handler(ex)
