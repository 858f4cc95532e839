"""The repeat-caller path of the authenticate filter, with the real verifiers.

A cached token or key is decided without verifying it again; every other
request, malformed ones above all, must get exactly the answer it gets from an
edge that has nothing cached.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edge.auth.apikey_verifier import ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord, generate_key
from edge.auth.authenticator import Authenticator, Verifiers
from edge.auth.config import AuthConfig
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier
from tests.edge.auth.auth_edge import AuthEdge
from tests.edge.auth.conftest import AUDIENCE, ISSUER, CountingKeySource, FakeClock, TokenFactory

# Every test twice: authenticate + identity headers fused, and apart.
pytestmark = pytest.mark.usefixtures("fusion")

CONFIG = AuthConfig.model_validate(
    {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks": {"service": "auth"},
        "api_keys": {"redis_url": "redis://127.0.0.1:6379/0"},
        "identity": {"token": {"enabled": False}},
    }
)
MANAGED = (*CONFIG.identity.headers, CONFIG.identity.token.header)
KEY, KEY_ID = generate_key()
UNKNOWN_KEY, _ = generate_key()
RECORD = ApiKeyRecord(KEY_ID, "acme", ("partner",), "gold", 0.0)

Headers = Sequence[tuple[str, str]]


class Caches:
    """The verifiers of an edge, hence its caches (a fresh one knows nothing)."""

    def __init__(self, key_source: CountingKeySource, clock: FakeClock) -> None:
        self.jwt = JwtVerifier(JwtSettings(issuer=ISSUER, audience=AUDIENCE), key_source, clock)
        self.key_lookups = 0
        self.api_keys = ApiKeyVerifier(self._lookup, clock)

    async def _lookup(self, key: str) -> ApiKeyRecord | None:
        self.key_lookups += 1
        return RECORD if key == KEY else None


class Edge(AuthEdge):
    """The auth filters with the verifiers of ``caches`` (see AuthEdge)."""

    def __init__(self, caches: Caches, route_auth: Any = None, *, forward: bool = False) -> None:
        authenticator = Authenticator(Verifiers(jwt=caches.jwt, api_keys=caches.api_keys))
        super().__init__(CONFIG, authenticator, route_auth, forward_credentials=forward)
        self.caches = caches

    async def answer(self, headers: Headers) -> tuple[Any, ...]:
        """What the caller sees and what goes upstream, request ids left out."""
        response = await self.send(headers)
        body: Any = response.text
        if response.content_type == "application/problem+json":
            body = json.loads(body)
            body.pop("request_id")
        upstream = None
        if self.seen is not None:
            upstream = [(k, v) for k, v in self.seen.upstream_items() if k != "X-Request-Id"]
        return response.status, response.headers.getall("WWW-Authenticate", []), body, upstream


@pytest.fixture
def token(tokens: TokenFactory, ec_key: ec.EllipticCurvePrivateKey) -> str:
    signed: str = tokens.sign(ec_key, "ec-1")
    return signed


def one_char_off(token: str) -> str:
    """``token`` with one character in the middle of its signature changed (still canonical)."""
    signature_start = token.rindex(".") + 1
    i = signature_start + (len(token) - signature_start) // 2
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


async def test_a_repeat_caller_is_not_verified_again_and_gets_the_same_answer(
    key_source: CountingKeySource,
    clock: FakeClock,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edge = Edge(Caches(key_source, clock))
    first = await edge.answer([("Authorization", f"Bearer {token}")])
    assert first[0] == 200
    assert ("X-User-Id", "alice") in first[3] and ("X-Auth-Method", "jwt") in first[3]
    assert all(name != "Authorization" for name, _ in first[3])

    def no_signature_checks(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cached token was verified again")

    monkeypatch.setattr(jwt, "decode", no_signature_checks)
    for _ in range(3):
        assert await edge.answer([("Authorization", f"Bearer {token}")]) == first
    assert key_source.lookups == 1
    stats = edge.caches.jwt.stats()
    assert (stats.verified, stats.cache_hits) == (1, 3)


async def test_a_token_one_character_off_a_cached_one_is_verified_in_full(
    key_source: CountingKeySource, clock: FakeClock, token: str
) -> None:
    edge = Edge(Caches(key_source, clock))
    assert (await edge.send([("Authorization", f"Bearer {token}")])).status == 200
    response = await edge.send([("Authorization", f"Bearer {one_char_off(token)}")])
    assert response.status == 401
    assert 'error_description="signature invalid"' in response.headers["WWW-Authenticate"]
    assert key_source.lookups == 2
    stats = edge.caches.jwt.stats()
    assert (stats.refused, stats.cache_hits) == (1, 0)


@pytest.mark.parametrize(
    ("build", "description"),
    [
        (lambda t: [("Authorization", f"Bearer {t}!")], "malformed authorization header"),
        (lambda t: [("Authorization", f"Bearer {t} x")], "malformed authorization header"),
        (lambda t: [("Authorization", f"Bearer {t}=x")], "malformed authorization header"),
        (
            lambda t: [("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")],
            "more than one credential",
        ),
        (
            lambda t: [("Authorization", f"Bearer {t}"), ("X-API-Key", KEY)],
            "more than one credential",
        ),
    ],
)
async def test_malformed_requests_around_a_cached_token_still_get_400(
    key_source: CountingKeySource, clock: FakeClock, token: str, build: Any, description: str
) -> None:
    edge = Edge(Caches(key_source, clock))
    assert (await edge.send([("Authorization", f"Bearer {token}")])).status == 200
    assert (await edge.send([("X-API-Key", KEY)])).status == 200
    status, _, body, upstream = await edge.answer(build(token))
    assert (status, body["error"], body["error_description"]) == (
        400,
        "invalid_request",
        description,
    )
    assert upstream is None


def variants(token: str) -> list[list[tuple[str, str]]]:
    """Requests built around a cached token (or key): malformed, ambiguous, or spelt otherwise."""
    return [
        [("Authorization", f"Bearer {token}!")],
        [("Authorization", f"Bearer {token} x")],
        [("Authorization", f"Bearer {token}\tx")],
        [("Authorization", f"Bearer {token}=x")],
        [("Authorization", f"Bearer x{token}")],
        [("Authorization", f"Bearer {token[:-1]}")],
        [("Authorization", f"Bearer {one_char_off(token)}")],
        [("Authorization", "Bearer ")],
        [("Authorization", "Bearer")],
        [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
        [("Authorization", f"Bearer {token}"), ("X-API-Key", KEY)],
        [("X-API-Key", KEY), ("Authorization", f"Bearer {token}")],
        [("Authorization", f"ApiKey {KEY}"), ("X-API-Key", KEY)],
        [("X-API-Key", KEY), ("X-API-Key", KEY)],
        [("Authorization", f"ApiKey {token}")],
        [("X-API-Key", token)],
        [("Authorization", f"Bearer {KEY}")],
        [("X-API-Key", f"{KEY}x")],
        [("X-API-Key", UNKNOWN_KEY)],
        [("Authorization", f"ApiKey {UNKNOWN_KEY}")],
        [("X-API-Key", " ")],
        # Accepted, by the full path: other spellings of a cached credential.
        [("Authorization", f"bearer {token}")],
        [("Authorization", f"BEARER   {token}  ")],
        [("Authorization", f"\tBearer {token}")],
        [("X-API-Key", f"  {KEY}\t")],
        [("Authorization", f"apikey {KEY}")],
        [("Authorization", "Basic c2VydmljZQ=="), ("X-API-Key", KEY)],
        # And the plain forms themselves.
        [("Authorization", f"Bearer {token}")],
        [("Authorization", f"ApiKey {KEY}")],
        [("X-API-Key", KEY)],
        [],
    ]


@pytest.mark.parametrize(
    "route_auth",
    [
        None,
        "optional",
        {"roles": ["admin"]},
        {"roles": ["partner"]},
        {"methods": ["apikey"]},
        {"methods": ["jwt"]},
    ],
)
async def test_warm_caches_change_no_answer(
    key_source: CountingKeySource, clock: FakeClock, token: str, route_auth: Any
) -> None:
    caches = Caches(key_source, clock)
    warmer = Edge(caches)  # a route taking both methods, no roles: everything gets cached
    assert (await warmer.send([("Authorization", f"Bearer {token}")])).status == 200
    assert (await warmer.send([("X-API-Key", KEY)])).status == 200
    assert (await warmer.send([("X-API-Key", UNKNOWN_KEY)])).status == 401
    warm = Edge(caches, route_auth)
    for headers in variants(token):
        cold = Edge(Caches(key_source, clock), route_auth)  # decides by the full path only
        expected = await cold.answer(headers)
        assert await warm.answer(headers) == expected, headers
    assert caches.key_lookups == 2  # the known and the unknown key, once each


@pytest.mark.parametrize("forward", [False, True])
async def test_repeat_callers_credentials_are_removed_or_forwarded_as_configured(
    key_source: CountingKeySource, clock: FakeClock, token: str, forward: bool
) -> None:
    edge = Edge(Caches(key_source, clock), forward=forward)
    basic = ("Authorization", "Basic c2VydmljZQ==")
    for headers in (
        [("Authorization", f"Bearer {token}")],
        [("Authorization", f"ApiKey {KEY}")],
        [("X-API-Key", KEY)],
        [("X-API-Key", KEY), basic],
    ):
        answers = [await edge.answer(headers) for _ in range(2)]  # verified, then cached
        assert answers[0] == answers[1]
        upstream = answers[1][3]
        sent = [(k, v) for k, v in upstream if k in ("Authorization", "X-API-Key")]
        if forward:
            assert sent == headers
        else:
            assert sent == ([basic] if basic in headers else [])
    stats = edge.caches.jwt.stats()
    assert (stats.verified, stats.cache_hits) == (1, 1)
    assert edge.caches.key_lookups == 1
