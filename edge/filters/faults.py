"""Faults at a route: the matched route's ``fault`` block applied to its requests.

Runs last before the proxy (as Envoy's fault filter sits right before the
router): a request refused by address, auth or a rate limit gets its refusal,
never a fault, and a caller who may not use the route cannot hold the edge's
connections with delays. Routes without a ``fault`` cost one dict look-up.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from edge.object_memo import ObjectMemo
from edge.routes import Route
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.faults.config import FaultConfig
from mesh.faults.injection import FaultInjection
from mesh.faults.policy import FaultPolicy, Roll


class RouteFaultFilter:
    def __init__(self, injection: FaultInjection, roll: Roll) -> None:
        """``roll`` draws every route's percentages (uniform in [0, 1))."""
        self._apply = injection.apply

        def policy_of(route: Route) -> FaultPolicy:
            return FaultPolicy(FaultConfig.model_validate(route.options["fault"]), roll)

        # One policy per route object, for as long as the route lives (until a
        # reload builds new routes and a new filter): its active count with it.
        self._policies: ObjectMemo[Route, FaultPolicy] = ObjectMemo(policy_of, 4096)

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        route = ex.attrs.get("route")
        if route is None or "fault" not in route.options:
            return next_handler(ex)
        return self._apply(ex, self._policies(route), next_handler)
