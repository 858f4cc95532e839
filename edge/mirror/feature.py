"""The mirror feature of the edge: the filter copying requests (:mod:`edge.filters.mirror`)
last before the proxy, the copies in flight, and their metrics.

Always built, so that a reload may add mirrors to routes; with no route mirrored it
contributes no filter. Last before the proxy because a copy is the request as the
service gets it: after authentication (a refused request is never copied), rate
limits, header changes and the identity headers and token.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from edge.config import EdgeConfig
from edge.feature import BaseFeature, EdgeContext
from edge.filters.mirror import MirrorFilter
from edge.mirror.metrics import MirrorMetrics
from edge.mirror.shadow import Mirrors
from mesh.chain import Filter
from mesh.config.reload import Reload


class MirrorFeature(BaseFeature):
    name = "mirror"

    def __init__(
        self, config: EdgeConfig, ctx: EdgeContext, roll: Callable[[], float] = random.random
    ) -> None:
        """``ctx.transport`` is required: the copies go through the proxy's transport."""
        if ctx.transport is None:
            raise ValueError("mirroring needs the proxy's transport (EdgeContext.transport)")
        store = ctx.store
        self._mirrors = Mirrors(
            ctx.transport,
            lambda: store.current,
            MirrorMetrics(ctx.registry),
            connect_timeout=config.proxy.connect_timeout,
            mesh_tls=ctx.mesh_tls,
        )
        self._roll = roll
        self._filters = self._filters_for(config)

    def _filters_for(self, config: EdgeConfig) -> list[Filter]:
        if not any(route.mirror is not None for route in config.routes):
            return []
        return [MirrorFilter(self._mirrors, config.listen.body_timeout, self._roll)]

    def before_proxy(self) -> list[Filter]:
        return self._filters

    def prepare_reload(self, config: EdgeConfig) -> Reload:
        """The routes' mirrors come with the routes (the gateway's); this only adds or
        removes the filter. Copies in flight finish; slots are counted per route name
        across reloads."""
        filters = self._filters_for(config)

        def commit() -> None:
            self._filters = filters

        return Reload(("routes",), commit)

    async def stop(self) -> None:
        await self._mirrors.stop()
