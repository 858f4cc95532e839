"""The end of the edge's chain when its route table has routes the edge answers itself.

Such a route's requests go through every filter a proxied request does
(authentication, address lists, rate limits, header changes, faults), so a redirect
behind ``auth`` still asks for credentials; only the last step differs: the
answer is made here instead of by a service. A table without such routes ends in
the proxy itself, and its requests pay nothing for this.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from edge.direct.actions import DirectAction, DirectResponse
from mesh.chain import Handler, answered
from mesh.exchange import Exchange


class DirectTerminal:
    """Answers the requests of routes with a direct action; hands the others to ``proxy``."""

    def __init__(self, proxy: Handler) -> None:
        self._proxy = proxy

    def __call__(self, ex: Exchange) -> Awaitable[web.StreamResponse]:
        route = ex.attrs.get("route")
        if route is None or route.direct is None:
            return self._proxy(ex)
        return answered(direct_answer(ex, route.direct, route.prefix))


def direct_answer(ex: Exchange, action: DirectAction, prefix: str) -> web.Response:
    """The edge's answer to ``ex`` for its route's ``action`` (the route matched ``prefix``);
    a redirect that needs the request's ``Host`` gets a 400 problem without a valid one."""
    if isinstance(action, DirectResponse):
        headers = {"Content-Type": action.content_type} if action.content_type else None
        return web.Response(status=action.status, body=action.body, headers=headers)
    request = ex.request
    host = request.headers.get("Host", "")
    url = action.location(request.scheme, host, prefix, ex.path, ex.query)
    if url is None:
        return ex.problem(
            400, "Bad request", "a valid Host header is required to redirect", slug="bad-host"
        )
    return web.Response(status=action.code, headers={"Location": url})
