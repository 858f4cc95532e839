"""CORS at the edge, before routing and auth: a browser's preflight carries no
credentials, so it is answered here for every path (204, or a 403 problem saying what
the policy refuses), and a cross-origin request from an allowed origin gets the CORS
headers on whatever answers it (the service, or a 401/404/429 problem, which a page's
script can then read). Requests without ``Origin`` pass untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import istr

from edge.cors.policy import REQUEST_HEADERS, REQUEST_METHOD, CorsPolicy, PreflightRefused
from mesh.chain import Handler
from mesh.exchange import Exchange

_ORIGIN = istr("Origin")
_REQUEST_METHOD = istr(REQUEST_METHOD)
_PREFLIGHT_VARY = f"Origin, {REQUEST_METHOD}, {REQUEST_HEADERS}"


class CorsFilter:
    """``on_preflight(allowed)`` is told of every preflight answered (metrics)."""

    def __init__(self, policy: CorsPolicy, on_preflight: Callable[[bool], None]) -> None:
        self._policy = policy
        self._on_preflight = on_preflight
        self._vary = policy.vary()

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        origin = ex.request.headers.get(_ORIGIN)
        if origin is None:  # not a cross-origin request from a browser: one look-up
            return next_handler(ex)
        return self._cross_origin(ex, next_handler, origin)

    async def _cross_origin(
        self, ex: Exchange, next_handler: Handler, origin: str
    ) -> web.StreamResponse:
        headers = ex.request.headers
        method = headers.get(_REQUEST_METHOD)
        if ex.request.method == "OPTIONS" and method is not None:
            return self._preflight(ex, origin, method, headers.get(REQUEST_HEADERS))
        if self._policy.allows(origin):
            ex.response_headers.extend(self._policy.response_headers(origin))
        ex.vary = self._vary
        return await next_handler(ex)

    def _preflight(
        self, ex: Exchange, origin: str, method: str, requested: str | None
    ) -> web.StreamResponse:
        answer = self._policy.preflight(origin, method, requested)
        vary = {"Vary": _PREFLIGHT_VARY} if self._vary else {}
        if isinstance(answer, PreflightRefused):
            self._on_preflight(False)
            return ex.problem(
                403, "CORS preflight refused", answer.detail, slug="cors-refused", headers=vary
            )
        self._on_preflight(True)
        response = web.Response(status=204, headers=vary)
        response.headers.extend(answer)
        return response
