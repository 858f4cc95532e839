"""Routing filter: match the host, normalised path, headers and query to a route and mark
the exchange with it (and, for a route with a canary, the side of it the request goes to)."""

from __future__ import annotations

import random
from collections.abc import Callable

from aiohttp import web

from edge.routes import RouteTable
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.proxy import client_body_problem
from mesh.transport.base import RequestBodyTooLarge


class RoutingFilter:
    """404 problem when no route matches, 405 (with Allow) when the method is not accepted,
    413 when the declared body is larger than the route takes (``max_body_size``, the
    route's or ``default_max_body_size``; a chunked body is bounded as it streams)."""

    def __init__(
        self,
        table: RouteTable,
        default_timeout: float,
        default_max_body_size: int | None = None,
        on_canary: Callable[[str, str], None] | None = None,
        roll: Callable[[], float] = random.random,
    ) -> None:
        """``on_canary(route, side)`` is told the side of each request to a route with a
        canary (metrics); ``roll`` draws its chance (uniform in [0, 1))."""
        self._table = table
        self._default_timeout = default_timeout
        self._default_max_body_size = default_max_body_size
        self._on_canary = on_canary
        self._roll = roll

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        # The client's own headers (before any header changes) and raw query: the
        # table reads them only for a route with conditions on them.
        headers = ex.request.headers
        match = self._table.match(headers.get("Host"), ex.path, ex.method, headers, ex.query)
        route = match.route
        if route is None:
            return ex.problem(404, "No route", f"no route matches {ex.path}", slug="no-route")
        ex.route = route.name  # a 405 is the route's answer too (metrics, access log)
        if not match.method_allowed:
            allow = ", ".join(sorted(route.methods or ()))
            return ex.problem(
                405,
                "Method not allowed",
                f"{ex.method} is not accepted on {route.prefix}",
                slug="method-not-allowed",
                headers={"Allow": allow},
            )
        ex.attrs["route"] = route
        ex.service = route.service
        ex.upstream_path = route.upstream_path(ex.path)
        # Stored, not tested: the proxy reads the key only for a route with a policy.
        ex.hash_policy = route.hash_policy
        ex.retries = route.retries
        canary = route.canary
        if canary is not None:
            asked = ex.request.headers.get(canary.header) if canary.header else None
            ex.canary = canary.choose(asked, self._roll())
            if self._on_canary is not None:
                self._on_canary(route.name, ex.canary.side)
        # The deadline starts here and travels to every hop (mesh.deadline).
        ex.timeout = route.timeout if route.timeout is not None else self._default_timeout
        # A size is at least 1 byte, so ``or`` picks the route's own when it has one.
        limit = route.max_body_size or self._default_max_body_size
        if limit is not None:
            ex.max_body_size = limit
            declared = ex.request.content_length
            if declared is not None and declared > limit:
                detail = f"the request body of {declared} bytes is longer than the {limit} allowed"
                return client_body_problem(ex, RequestBodyTooLarge(detail))
        return await next_handler(ex)
