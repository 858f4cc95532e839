"""Deadline filter: take the remaining time from the caller, refuse what is already late.

Runs on both sidecar listeners. Inbound, the header comes from the edge or a
peer sidecar; outbound, from the app, which forwards what it received (as it
forwards trace context). A request with no time left is answered 504 at once
and never reaches the app or an upstream.
"""

from __future__ import annotations

from aiohttp import web

from mesh.chain import Handler
from mesh.deadline import HEADER, parse_remaining
from mesh.exchange import Exchange
from mesh.proxy import gateway_timeout


class DeadlineFilter:
    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        remaining = parse_remaining(ex.upstream_headers.get(HEADER))
        if remaining is not None:
            if remaining <= 0:
                return gateway_timeout(ex, "the request's deadline had passed on arrival")
            if ex.timeout is None or remaining < ex.timeout:  # not min(): see mesh.proxy
                ex.timeout = remaining
        return await next_handler(ex)
