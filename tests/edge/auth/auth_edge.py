"""A minimal edge around the auth filters, behind the real ingress, for filter tests.

Ingress → strip identity headers → routing (one fixed route) → authenticate →
any filters ``between`` → identity headers → any extra filters → a capture of
what would go upstream. Neighbours are fused as the edge's gateway fuses them
(:func:`mesh.chain.fuse_adjacent`) unless :attr:`AuthEdge.fuse` is False, so
that the tests can run against both shapes of the chain (the ``fusion``
fixture).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from edge.auth.authenticator import Authenticator
from edge.auth.config import AuthConfig
from edge.auth.identity import IdentityHeaders
from edge.auth.policy import RoutePolicies
from edge.filters.authenticate import AuthenticateFilter
from edge.filters.identity_headers import IdentityHeadersFilter
from edge.filters.strip_identity import StripIdentityFilter
from edge.routes import make_route
from mesh.chain import Filter, Handler, build_chain, fuse_adjacent
from mesh.exchange import Exchange
from mesh.ingress import Ingress

Headers = Sequence[tuple[str, str]]


class AuthEdge:
    """The auth filters of ``config`` with ``authenticator``, on one route with ``route_auth``."""

    fuse: ClassVar[bool] = True
    """Fuse adjacent filters as the gateway does (authenticate + identity headers)."""

    def __init__(
        self,
        config: AuthConfig,
        authenticator: Authenticator,
        route_auth: Any = None,
        *,
        forward_credentials: bool = False,
        extra: Sequence[Filter] = (),
        between: Sequence[Filter] = (),
    ) -> None:
        self.seen: Exchange | None = None
        options = {"auth": route_auth} if route_auth is not None else {}
        route = make_route(prefix="/", service="svc", source="config", options=options)
        managed = (*config.identity.headers, config.identity.token.header)

        async def routing(ex: Exchange, next_handler: Handler) -> web.StreamResponse:
            ex.attrs["route"] = route
            return await next_handler(ex)

        async def capture(ex: Exchange) -> web.StreamResponse:
            self.seen = ex
            return web.Response(text="ok")

        filters: list[Filter] = [
            StripIdentityFilter(managed),
            routing,
            AuthenticateFilter(
                RoutePolicies(config),
                authenticator,
                realm="meshgate",
                forward_credentials=forward_credentials,
            ),
            *between,
            IdentityHeadersFilter(IdentityHeaders(config.identity.claims)),
            *extra,
        ]
        self.filters = fuse_adjacent(filters) if self.fuse else filters
        chain = build_chain(self.filters, capture)
        self.ingress = Ingress(lambda: chain, strip_headers={h.lower() for h in managed})

    async def send(self, headers: Headers) -> web.Response:
        self.seen = None
        request = make_mocked_request("GET", "/x", headers=CIMultiDict([("Host", "h"), *headers]))
        response = await self.ingress(request)
        assert isinstance(response, web.Response)
        return response

    def upstream(self) -> list[tuple[str, str]]:
        assert self.seen is not None, "the request did not reach the upstream"
        return self.seen.upstream_items()
