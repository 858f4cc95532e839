"""The edge's chain assembly: adjacent filters fused when the first offers to."""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from edge.auth.authenticator import Authenticator
from edge.auth.config import AuthConfig
from edge.auth.identity import IdentityHeaders
from edge.auth.policy import RoutePolicies
from edge.filters.authenticate import AuthenticateFilter
from edge.filters.identity_headers import IdentityHeadersFilter
from edge.gateway import FusibleFilter, fuse_adjacent
from mesh.chain import Filter, Handler
from mesh.exchange import Exchange


def plain(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
    return next_handler(ex)


class Joins:
    """Fuses with the next filter when that one is ``partner``."""

    def __init__(self, partner: Filter, parts: tuple[Filter, ...] = ()) -> None:
        self.partner = partner
        self.parts = parts or (self,)

    def fuse_next(self, following: Filter) -> Filter | None:
        if following is not self.partner:
            return None
        return Joins(self.partner, (*self.parts, following))

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        return next_handler(ex)


def other(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
    return next_handler(ex)


def test_fuses_only_neighbours_that_agree() -> None:
    joins = Joins(plain)
    assert isinstance(joins, FusibleFilter)
    fused = fuse_adjacent([other, joins, plain, other])
    assert len(fused) == 3 and fused[0] is other and fused[2] is other
    assert isinstance(fused[1], Joins) and fused[1].parts == (joins, plain)
    # Not its partner, or not right after it: all stay.
    assert fuse_adjacent([joins, other, plain]) == [joins, other, plain]
    assert fuse_adjacent([plain, joins]) == [plain, joins]
    assert fuse_adjacent([]) == []


def test_a_fused_filter_may_fuse_again() -> None:
    joins = Joins(plain)
    [fused] = fuse_adjacent([joins, plain, plain])
    assert isinstance(fused, Joins) and fused.parts == (joins, plain, plain)


def auth_filters() -> tuple[AuthenticateFilter, IdentityHeadersFilter]:
    config = AuthConfig.model_validate(
        {"issuer": "i", "audience": "a", "jwks": {"url": "http://127.0.0.1:1/jwks"}}
    )
    authenticate = AuthenticateFilter(RoutePolicies(config), Authenticator(), realm="r")
    return authenticate, IdentityHeadersFilter(IdentityHeaders(config.identity.claims))


def test_authenticate_takes_over_identity_headers_only_right_after_it() -> None:
    authenticate, headers = auth_filters()
    [fused] = fuse_adjacent([authenticate, headers])
    assert isinstance(fused, AuthenticateFilter) and fused is not authenticate
    assert fused.fuse_next(headers) is None  # already has them
    assert fuse_adjacent([authenticate, plain, headers]) == [authenticate, plain, headers]
    assert fuse_adjacent([headers, authenticate]) == [headers, authenticate]
