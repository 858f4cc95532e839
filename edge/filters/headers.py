"""Configured header changes (:mod:`edge.headers`): the edge's answer changes before
routing, so that they reach every answer (the edge's own 404s and 403s too); its request
changes and a route's own after routing, after authentication and rate limits, so that
those see the client's headers."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from edge.headers.config import HeadersConfig
from edge.headers.rules import HeaderRules
from edge.object_memo import ObjectMemo
from edge.routes import Route
from mesh.chain import Handler
from mesh.exchange import Exchange


class EdgeResponseHeadersFilter:
    """Before routing: the ``headers`` section's response changes."""

    def __init__(self, rules: HeaderRules) -> None:
        self._rules = rules

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        self._rules.response(ex)
        return next_handler(ex)


class RouteHeadersFilter:
    """After routing: the section's request changes, then the route's own (both sides)."""

    def __init__(self, edge: HeaderRules | None) -> None:
        self._edge = edge if edge is not None and edge.has_request else None
        self._by_route: ObjectMemo[Route, HeaderRules] = ObjectMemo(_route_rules, 4096)

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        if self._edge is not None:
            self._edge.request(ex)
        route = ex.attrs.get("route")
        if route is not None and "headers" in route.options:
            rules = self._by_route(route)
            rules.request(ex)
            rules.response(ex)
        return next_handler(ex)


def _route_rules(route: Route) -> HeaderRules:
    return HeaderRules(HeadersConfig.model_validate(route.options["headers"]))
