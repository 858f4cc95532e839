"""Client addresses refused at the edge: the whole edge's list before routing, a route's
own list once the route is known. A refusal is a 403 problem (``address-refused``) naming
the address as the edge saw it (``proxy.trusted_hops`` decides which one that is)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from edge.ip_access.config import IpAccessConfig
from edge.ip_access.policy import AddressPolicy
from edge.object_memo import ObjectMemo
from edge.routes import Route
from mesh.chain import Handler, answered
from mesh.exchange import Exchange

Refused = Callable[[str], None]
"""Told the scope of each refusal: ``edge`` or ``route``."""


def refuse(ex: Exchange, scope: str) -> web.Response:
    where = "this gateway" if scope == "edge" else "this route"
    return ex.problem(
        403,
        "Address not allowed",
        f"requests from {ex.client_ip} may not use {where}",
        slug="address-refused",
    )


class EdgeAddressFilter:
    """Before routing: every request's address against the ``ip_access`` section."""

    def __init__(self, policy: AddressPolicy, on_refuse: Refused) -> None:
        self._permits = policy.permits
        self._on_refuse = on_refuse

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        if self._permits(ex.client_ip):
            return next_handler(ex)
        self._on_refuse("edge")
        return answered(refuse(ex, "edge"))


class RouteAddressFilter:
    """After routing: the address against the matched route's own ``ip_access``, if any."""

    def __init__(self, on_refuse: Refused) -> None:
        self._on_refuse = on_refuse
        self._policies: ObjectMemo[Route, AddressPolicy] = ObjectMemo(_route_policy, 4096)

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        route = ex.attrs.get("route")
        if route is None or "ip_access" not in route.options:
            return next_handler(ex)
        if self._policies(route).permits(ex.client_ip):
            return next_handler(ex)
        self._on_refuse("route")
        return answered(refuse(ex, "route"))


def _route_policy(route: Route) -> AddressPolicy:
    return AddressPolicy.of(IpAccessConfig.model_validate(route.options["ip_access"]))
