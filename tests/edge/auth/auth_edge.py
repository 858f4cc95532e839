"""A minimal edge around the auth filters, behind the real ingress, for filter tests.

Ingress → strip identity headers → routing (one fixed route) → authenticate →
identity headers → any extra filters → a capture of what would go upstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from mesh.chain import Filter, Handler, build_chain
from mesh.exchange import Exchange
from mesh.ingress import Ingress

Headers = Sequence[tuple[str, str]]


class AuthEdge:
    """The auth filters of ``config`` with ``authenticator``, on one route with ``route_auth``."""

    def __init__(
        self,
        config: AuthConfig,
        authenticator: Authenticator,
        route_auth: Any = None,
        *,
        forward_credentials: bool = False,
        extra: Sequence[Filter] = (),
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

        chain = build_chain(
            [
                StripIdentityFilter(managed),
                routing,
                AuthenticateFilter(
                    RoutePolicies(config),
                    authenticator,
                    realm="meshgate",
                    forward_credentials=forward_credentials,
                ),
                IdentityHeadersFilter(IdentityHeaders(config.identity.claims)),
                *extra,
            ],
            capture,
        )
        self.ingress = Ingress(lambda: chain, strip_headers={h.lower() for h in managed})

    async def send(self, headers: Headers) -> web.Response:
        self.seen = None
        request = make_mocked_request("GET", "/x", headers=CIMultiDict([("Host", "h"), *headers]))
        response = await self.ingress(request)
        assert isinstance(response, web.Response)
        return response

    def upstream(self) -> list[tuple[str, str]]:
        assert self.seen is not None, "the request did not reach the upstream"
        return list(self.seen.upstream_headers.items())
