"""Last before the proxy: copies a share of a route's requests to its shadow service
(:mod:`edge.mirror`), as the proxy would send them."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from aiohttp import web

from edge.mirror.policy import BodyPlan, MirrorPolicy, body_plan
from edge.mirror.shadow import Mirrors
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.proxy import client_body_problem, read_body_whole
from mesh.transport.base import ClientBodyError


class MirrorFilter:
    """For a request whose route has a mirror and whose dice say so: reads a body of
    declared length within the mirror's ``max_body_size`` whole (within the listener's
    ``body_timeout`` and the route's ``max_body_size``, as the proxy would: a client's
    failing body gets the proxy's answer, 400, 408 or 413), hands it to the proxy in
    ``ex.body``, starts the copy, and goes on at once. Any other request (most of them)
    costs an attribute test, and for a route with a mirror, a roll of the dice."""

    def __init__(
        self,
        mirrors: Mirrors,
        body_timeout: float | None,
        roll: Callable[[], float] = random.random,
    ) -> None:
        """``roll`` draws each request's chance (uniform in [0, 1))."""
        self._mirrors = mirrors
        self._body_timeout = body_timeout
        self._roll = roll

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        route = ex.attrs["route"]  # set by routing before any filter of this stage
        policy: MirrorPolicy | None = route.mirror
        if policy is None or not policy.chosen(self._roll()):
            return next_handler(ex)
        return self._copy_and_go_on(ex, route.name, policy, next_handler)

    async def _copy_and_go_on(
        self, ex: Exchange, route: str, policy: MirrorPolicy, next_handler: Handler
    ) -> web.StreamResponse:
        mirrors = self._mirrors
        metrics = mirrors.metrics
        service = policy.service
        request = ex.request
        if ex.upgrade is not None:
            # A switched connection is the client's own: there is nothing to copy it to.
            metrics.decided(route, service, "skipped_upgrade")
            return await next_handler(ex)
        plan = body_plan(request.body_exists, request.content_length, policy.max_body_size)
        if plan is BodyPlan.SKIP:
            metrics.decided(route, service, "skipped_body")
            return await next_handler(ex)
        instance = mirrors.pick(service)
        if instance is None:
            metrics.decided(route, service, "no_instance")
            return await next_handler(ex)
        if not mirrors.reserve(route, policy):
            metrics.decided(route, service, "dropped")
            return await next_handler(ex)
        body = None
        if plan is BodyPlan.BUFFER:
            try:
                body = await read_body_whole(ex, self._body_timeout)
            except ClientBodyError as exc:
                mirrors.release(route)
                return client_body_problem(ex, exc)
        mirrors.send(ex, route, policy, instance, body)
        return await next_handler(ex)
