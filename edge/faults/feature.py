"""The fault injection feature of the edge: a route's ``fault`` block, applied last
before the proxy (:mod:`edge.filters.faults`), and ``meshgate_faults_*``.

Always built, so that a reload may add a ``fault`` to a route; with none on any
route it contributes no filter. Its filter is rebuilt with the routes on each
reload (the ``routes`` key, applied by the gateway), so every policy starts
afresh with its routes.

It also has the ingress remove ``X-Meshgate-Fault-*`` from every client request
before anything is sent on: an outside caller must never reach a sidecar's header
control through an app that forwards the headers it was sent. A route with
``fault.headers: true`` still reads them (from the request as the client sent it).
"""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry

from edge.config import EdgeConfig
from edge.feature import BaseFeature
from edge.filters.faults import RouteFaultFilter
from mesh.chain import Filter
from mesh.config.reload import Reload
from mesh.faults.injection import FaultInjection
from mesh.faults.metrics import FaultMetrics
from mesh.faults.policy import CONTROL_HEADERS, Roll


class FaultsFeature(BaseFeature):
    name = "faults"

    def __init__(
        self,
        config: EdgeConfig,
        registry: CollectorRegistry,
        roll: Roll = random.random,
        injection: FaultInjection | None = None,
    ) -> None:
        self._injection = injection or FaultInjection(FaultMetrics(registry))
        self._roll = roll
        self._filters = self._filters_for(config)

    def _filters_for(self, config: EdgeConfig) -> list[Filter]:
        if not any(route.fault is not None for route in config.routes):
            return []
        return [RouteFaultFilter(self._injection, self._roll)]

    def before_proxy(self) -> list[Filter]:
        return self._filters

    def strip_headers(self) -> set[str]:
        return {name.lower() for name in CONTROL_HEADERS}

    def prepare_reload(self, config: EdgeConfig) -> Reload:
        filters = self._filters_for(config)

        def commit() -> None:
            self._filters = filters

        # The routes are the gateway's key; this only follows them.
        return Reload((), commit)
