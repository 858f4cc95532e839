"""IssuerRouter: the token's iss picks the provider, which verifies in full with its own keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict, CIMultiDictProxy

from edge.auth.authenticator import Authenticator, Verifiers
from edge.auth.credentials import Credential
from edge.auth.errors import AuthError
from edge.auth.issuer_router import IssuerRouter
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier
from edge.auth.keys import verification_key_from_jwk
from edge.auth.policy import RoutePolicy
from tests.edge.auth.conftest import CountingKeySource, FakeClock, TokenFactory, public_jwk

ISSUER_A = "https://customers.example"
ISSUER_B = "https://staff.example"
MAX_BYTES = 4096


class Providers:
    """Two providers, each with its own key (same kid on purpose) and key source."""

    def __init__(self, clock: FakeClock) -> None:
        self.key_a = ec.generate_private_key(ec.SECP256R1())
        self.key_b = ec.generate_private_key(ec.SECP256R1())
        self.keys_a = self._source(self.key_a)
        self.keys_b = self._source(self.key_b)
        self.a = self._verifier("a", ISSUER_A, "aud-a", self.keys_a, clock)
        self.b = self._verifier("b", ISSUER_B, "aud-b", self.keys_b, clock)
        self.router = IssuerRouter({ISSUER_A: self.a, ISSUER_B: self.b}, MAX_BYTES)

    @staticmethod
    def _source(key: ec.EllipticCurvePrivateKey) -> CountingKeySource:
        jwk = public_jwk(key, "k1")
        return CountingKeySource({"k1": verification_key_from_jwk(jwk, kid="k1")})

    @staticmethod
    def _verifier(
        name: str, issuer: str, audience: str, keys: CountingKeySource, clock: FakeClock
    ) -> JwtVerifier:
        settings = JwtSettings(
            issuer=issuer, audience=audience, max_token_bytes=MAX_BYTES, provider=name
        )
        return JwtVerifier(settings, keys, clock)


@pytest.fixture
def providers(clock: FakeClock) -> Providers:
    return Providers(clock)


async def refused(router: IssuerRouter, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        await router.verify(token)
    assert caught.value.code == "invalid_token" and caught.value.status == 401
    assert token not in caught.value.description
    return caught.value.description


async def test_each_token_is_verified_by_the_provider_its_iss_names(
    providers: Providers, tokens: TokenFactory
) -> None:
    a = tokens.sign(providers.key_a, "k1", iss=ISSUER_A, aud="aud-a", sub="carol")
    b = tokens.sign(providers.key_b, "k1", iss=ISSUER_B, aud="aud-b", sub="dave")
    claims_a = await providers.router.verify(a)
    claims_b = await providers.router.verify(b)
    assert (claims_a.subject, claims_a.provider) == ("carol", "a")
    assert (claims_b.subject, claims_b.provider) == ("dave", "b")
    # Each provider's keys were asked once, for its own token only.
    assert (providers.keys_a.lookups, providers.keys_b.lookups) == (1, 1)


async def test_an_issuer_no_provider_has_is_refused_before_any_key_is_looked_up(
    providers: Providers, tokens: TokenFactory
) -> None:
    token = tokens.sign(providers.key_a, "k1", iss="https://evil.example", aud="aud-a")
    assert await refused(providers.router, token) == "unknown issuer"
    assert (providers.keys_a.lookups, providers.keys_b.lookups) == (0, 0)
    assert providers.router.stats().refused == 1


async def test_a_token_signed_by_a_claiming_b_is_refused(
    providers: Providers, tokens: TokenFactory
) -> None:
    # Same kid in both key sets: only the signature check can tell them apart.
    forged = tokens.sign(providers.key_a, "k1", iss=ISSUER_B, aud="aud-b")
    assert await refused(providers.router, forged) == "signature invalid"
    assert providers.keys_b.lookups == 1 and providers.keys_a.lookups == 0


async def test_another_providers_audience_is_refused(
    providers: Providers, tokens: TokenFactory
) -> None:
    token = tokens.sign(providers.key_a, "k1", iss=ISSUER_A, aud="aud-b")
    assert await refused(providers.router, token) == "audience mismatch"


async def test_size_is_checked_before_decoding(providers: Providers) -> None:
    assert await refused(providers.router, "x" * (MAX_BYTES + 1)) == "token too large"
    assert await refused(providers.router, "not-a-jwt") == "malformed token"


async def test_a_verified_token_is_cached_by_its_own_provider_only(
    providers: Providers, tokens: TokenFactory
) -> None:
    a = tokens.sign(providers.key_a, "k1", iss=ISSUER_A, aud="aud-a")
    claims = await providers.router.verify(a)
    assert providers.a.cached(a) is claims
    assert providers.b.cached(a) is None
    assert providers.router.cached(a) is claims
    max_len, get = providers.router.cached_header_lookup()
    assert max_len == MAX_BYTES + len("Bearer ")
    assert get("Bearer " + a) is claims
    assert get("bearer " + a) is None
    # A repeat is a cache hit of A: no second key look-up.
    assert await providers.router.verify(a) is claims
    assert providers.keys_a.lookups == 1
    stats = providers.router.stats()
    assert (stats.verified, stats.cached_entries) == (1, 1)
    providers.router.clear_cache()
    assert providers.router.cached(a) is None


async def test_the_authenticators_cached_path_keeps_the_provider(
    providers: Providers, tokens: TokenFactory
) -> None:
    authenticator = Authenticator(Verifiers(jwt=providers.router))
    b = tokens.sign(providers.key_b, "k1", iss=ISSUER_B, aud="aud-b", sub="dave")
    everyone = RoutePolicy("required", frozenset({"jwt"}), (), "jwt")
    only_a = RoutePolicy("required", frozenset({"jwt"}), (), "jwt", frozenset({"a"}))
    identity = await authenticator.authenticate(Credential("bearer", b), everyone)
    assert identity is not None and identity.provider == "b"
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": "Bearer " + b}))
    cached = authenticator.cached(headers, everyone)
    assert cached is not None and cached.provider == "b"
    # Cached or not, B's token is not taken on a route for A.
    with pytest.raises(AuthError) as caught:
        authenticator.cached(headers, only_a)
    assert caught.value.description == "token issuer not accepted on this route"
    with pytest.raises(AuthError):
        await authenticator.authenticate(Credential("bearer", b), only_a)


def test_needs_a_verifier() -> None:
    with pytest.raises(ValueError):
        IssuerRouter({}, MAX_BYTES)
