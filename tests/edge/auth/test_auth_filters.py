"""The auth filters in the order the edge runs them, behind the real ingress."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest
from aiohttp import web

from edge.auth.apikey_verifier import ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord, generate_key
from edge.auth.authenticator import Authenticator, Verifiers
from edge.auth.claims import Claims
from edge.auth.config import AuthConfig
from edge.auth.errors import AuthError
from edge.auth.identity import IdentityHeaders
from edge.auth.keys import KeysUnavailable
from edge.auth.policy import RoutePolicies
from edge.filters.authenticate import AuthenticateFilter
from edge.filters.identity_headers import IdentityHeadersFilter
from edge.filters.identity_token import IdentityTokenFilter
from mesh.chain import Filter, Handler, fuse_adjacent
from mesh.exchange import Exchange
from mesh.identity.keys import generate_signing_key
from mesh.identity.token import IdentitySigner, verification_keys, verify_identity_token
from tests.edge.auth.auth_edge import AuthEdge
from tests.edge.auth.conftest import FakeClock

# Every test twice: authenticate + identity headers fused, and apart.
pytestmark = pytest.mark.usefixtures("fusion")

CONFIG = AuthConfig.model_validate(
    {
        "issuer": "i",
        "audience": "a",
        "jwks": {"service": "auth"},
        "api_keys": {"redis_url": "redis://127.0.0.1:6379/0"},
    }
)
ALICE = Claims(subject="alice", roles=("user",), email="alice@example.com")
KEY, KEY_ID = generate_key()
MANAGED = (*CONFIG.identity.headers, CONFIG.identity.token.header)


class Tokens:
    def __init__(self) -> None:
        self.unavailable = False

    async def verify(self, token: str) -> Claims:
        if self.unavailable:
            raise KeysUnavailable("no JWKS")
        if token == "good":
            return ALICE
        raise AuthError.invalid_token("token expired")


async def lookup(key: str) -> ApiKeyRecord | None:
    return ApiKeyRecord(KEY_ID, "acme", ("partner",), None, 0) if key == KEY else None


class Edge(AuthEdge):
    """The auth filters with fake verifiers, then the identity token filter (see AuthEdge)."""

    def __init__(
        self,
        route_auth: Any = None,
        *,
        forward_credentials: bool = False,
        between: Sequence[Filter] = (),
    ) -> None:
        self.tokens = Tokens()
        self.signer = IdentitySigner(generate_signing_key("ES256"))
        self.api_keys = ApiKeyVerifier(lookup, FakeClock())
        authenticator = Authenticator(Verifiers(jwt=self.tokens, api_keys=self.api_keys))
        super().__init__(
            CONFIG,
            authenticator,
            route_auth,
            forward_credentials=forward_credentials,
            extra=[IdentityTokenFilter(self.signer, "X-Mesh-Identity")],
            between=between,
        )


SPOOFED = [
    ("X-User-Id", "admin"),
    ("x-user-id", "root"),
    ("X_User_Id", "admin"),
    ("X-User-Roles", "admin"),
    ("x_user_roles", "admin"),
    ("X-Auth-Method", "apikey"),
    ("X-Consumer-Id", "acme"),
    ("X-User-Email", "root@example.com"),
    ("X-Mesh-Identity", "forged"),
    ("Connection", "X-User-Id"),
]


def identity_of(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    keys = {h.lower() for h in MANAGED}
    return [(k, v) for k, v in pairs if k.lower().replace("_", "-") in keys]


async def test_authenticated_caller_gets_exactly_the_edge_identity() -> None:
    edge = Edge()
    response = await edge.send([("Authorization", "Bearer good"), *SPOOFED])
    assert response.status == 200
    upstream = edge.upstream()
    identity = identity_of(upstream)
    token = dict(identity).pop("X-Mesh-Identity")
    assert [p for p in identity if p[0] != "X-Mesh-Identity"] == [
        ("X-User-Id", "alice"),
        ("X-User-Roles", "user"),
        ("X-User-Email", "alice@example.com"),
        ("X-Auth-Method", "jwt"),
    ]
    assert "Authorization" not in dict(upstream)
    assert edge.seen is not None
    assertion = verify_identity_token(
        token,
        verification_keys([edge.signer.public_key]),
        issuer="meshgate-edge",
        now=time.time(),
        leeway_s=5,
    )
    assert assertion.request_id == edge.seen.request_id
    assert assertion.headers == (
        ("X-User-Id", "alice"),
        ("X-User-Roles", "user"),
        ("X-User-Email", "alice@example.com"),
        ("X-Auth-Method", "jwt"),
    )


async def test_auth_none_routes_pass_credentials_but_never_identity() -> None:
    edge = Edge("none")
    response = await edge.send([("Authorization", "Bearer whatever"), *SPOOFED])
    assert response.status == 200
    upstream = edge.upstream()
    assert identity_of(upstream) == []
    assert dict(upstream)["Authorization"] == "Bearer whatever"


async def test_optional_route_lets_anonymous_callers_through_without_identity() -> None:
    edge = Edge("optional")
    assert (await edge.send(SPOOFED)).status == 200
    assert identity_of(edge.upstream()) == []
    assert (await edge.send([("Authorization", "Bearer bad")])).status == 401


async def test_refusal_is_a_problem_with_a_challenge_and_no_token() -> None:
    edge = Edge()
    response = await edge.send([("Authorization", "Bearer bad.token.value")])
    assert response.status == 401
    assert edge.seen is None
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="meshgate", error="invalid_token", error_description="token expired"'
    )
    assert response.content_type == "application/problem+json"
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body["error"] == "invalid_token"
    assert body["error_description"] == body["detail"] == "token expired"
    assert body["type"].endswith("/invalid_token")
    assert "bad.token.value" not in bytes(response.body).decode()  # type: ignore[arg-type]
    assert response.headers["X-Request-Id"] == body["request_id"]

    missing = await edge.send([])
    assert missing.status == 401
    assert missing.headers.getall("WWW-Authenticate") == [
        'Bearer realm="meshgate"',
        'ApiKey realm="meshgate"',
    ]


async def test_keys_unavailable_is_503_not_401() -> None:
    edge = Edge()
    edge.tokens.unavailable = True
    response = await edge.send([("Authorization", "Bearer good")])
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert "WWW-Authenticate" not in response.headers


async def test_roles_are_enforced() -> None:
    edge = Edge({"roles": ["admin"]})
    response = await edge.send([("Authorization", "Bearer good")])
    assert response.status == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


async def test_api_keys_stay_at_the_edge_and_other_schemes_do_not() -> None:
    edge = Edge()
    response = await edge.send([("X-API-Key", KEY), ("Authorization", "Basic c2VydmljZQ==")])
    assert response.status == 200
    upstream = dict(edge.upstream())
    assert "X-API-Key" not in upstream
    assert upstream["Authorization"] == "Basic c2VydmljZQ=="
    assert upstream["X-Consumer-Id"] == "acme" and upstream["X-Auth-Method"] == "apikey"
    assert (await edge.send([("Authorization", f"ApiKey {KEY}")])).status == 200
    assert "Authorization" not in dict(edge.upstream())


async def test_a_cached_api_key_stays_at_the_edge_in_either_plain_form() -> None:
    edge = Edge()
    forms = ([("X-API-Key", KEY)], [("Authorization", f"ApiKey {KEY}")])
    for headers in (*forms, *forms):
        assert (await edge.send([*headers, ("Accept", "a")])).status == 200
        upstream = dict(edge.upstream())
        assert "X-API-Key" not in upstream and "Authorization" not in upstream
        assert upstream["Accept"] == "a" and upstream["X-Auth-Method"] == "apikey"
    assert edge.api_keys.stats().cache_hits == 3  # all but the first from the cache


async def test_forward_credentials_keeps_them() -> None:
    edge = Edge(forward_credentials=True)
    assert (await edge.send([("Authorization", "Bearer good")])).status == 200
    assert dict(edge.upstream())["Authorization"] == "Bearer good"


async def test_a_filter_between_authenticate_and_identity_headers_keeps_them_apart() -> None:
    """A rate limit counting by ``X-User-Id`` sits between the two: it must see
    the caller authenticated but the header stripped, not yet injected."""
    seen: list[tuple[object, list[str]]] = []

    def between(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        seen.append((ex.attrs.get("identity"), ex.upstream_headers.getall("X-User-Id", [])))
        return next_handler(ex)

    apart = Edge(between=[between])
    assert len(apart.filters) == 6  # strip, routing, authenticate, between, headers, token
    response = await apart.send([("Authorization", "Bearer good"), *SPOOFED])
    assert response.status == 200
    [(identity, user_ids)] = seen
    assert apart.seen is not None and identity is apart.seen.attrs["identity"] is not None
    assert user_ids == []  # every spoofed copy stripped, the edge's not set yet
    assert ("X-User-Id", "alice") in apart.upstream()


async def test_adjacent_authenticate_and_identity_headers_run_as_one_level() -> None:
    fused = Edge()
    assert len(fused.filters) == (4 if Edge.fuse else 5)
    assert (await fused.send([("Authorization", "Bearer good")])).status == 200
    assert ("X-User-Id", "alice") in fused.upstream()


def _pass(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
    return next_handler(ex)


def test_authenticate_takes_over_identity_headers_only_right_after_it() -> None:
    config = AuthConfig.model_validate(
        {"issuer": "i", "audience": "a", "jwks": {"url": "http://127.0.0.1:1/jwks"}}
    )
    authenticate = AuthenticateFilter(RoutePolicies(config), Authenticator(), realm="r")
    headers = IdentityHeadersFilter(IdentityHeaders(config.identity.claims))
    [fused] = fuse_adjacent([authenticate, headers])
    assert isinstance(fused, AuthenticateFilter) and fused is not authenticate
    assert fused.fuse_next(headers) is None  # already has them
    assert fuse_adjacent([authenticate, _pass, headers]) == [authenticate, _pass, headers]
    assert fuse_adjacent([headers, authenticate]) == [headers, authenticate]
