"""Shared fixtures of the edge authentication tests: a manual clock, keys, token factory,
the edge's upstream transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from edge.auth.keys import VerificationKey, verification_key_from_jwk
from mesh.transport.fast import FastTransport

ISSUER = "https://auth.test"
AUDIENCE = "meshgate"
START = 1_700_000_000.0


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(private_key: PrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``private_key`` with ``kid`` (and any extra members)."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    jwk["kid"] = kid
    jwk.update(extra)
    return dict(jwk)


class CountingKeySource:
    """A KeySource over a fixed dict that counts lookups (each one is a cache miss)."""

    def __init__(self, keys: Mapping[str, VerificationKey]) -> None:
        self.keys = dict(keys)
        self.lookups = 0

    async def get_key(self, kid: str) -> VerificationKey | None:
        self.lookups += 1
        return self.keys.get(kid)


class TokenFactory:
    """Signs tokens whose claims default to valid ones at the fake clock's time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid claims; an override of None removes the claim."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "roles": ["user"],
            "email": "alice@example.com",
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(
        self,
        private_key: PrivateKey,
        kid: str | None,
        *,
        alg: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> str:
        if alg is None:
            if isinstance(private_key, rsa.RSAPrivateKey):
                alg = "RS256"
            elif isinstance(private_key, ec.EllipticCurvePrivateKey):
                alg = "ES256"
            else:
                alg = "EdDSA"
        all_headers = dict(headers or {})
        if kid is not None:
            all_headers["kid"] = kid
        return jwt.encode(
            self.claims(**claim_overrides), private_key, algorithm=alg, headers=all_headers
        )


@pytest.fixture(params=[True, False], ids=["fused", "apart"])
def fusion(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run a test with authenticate + identity headers fused into one chain
    level (as the gateway builds it), then as two levels (as when a filter sits
    between them): every answer must be the same."""
    from tests.edge.auth.auth_edge import AuthEdge

    AuthEdge.fuse = request.param
    try:
        yield request.param
    finally:
        AuthEdge.fuse = True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tokens(clock: FakeClock) -> TokenFactory:
    return TokenFactory(clock)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def attacker_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def jwk_of() -> Any:
    """``public_jwk`` as a fixture, so test modules need not import conftest."""
    return public_jwk


@pytest.fixture(scope="session")
def ec_jwk(ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return public_jwk(ec_key, "ec-1", alg="ES256", use="sig")


@pytest.fixture(scope="session")
def rsa_jwk(rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return public_jwk(rsa_key, "rsa-1")  # no alg: RS*/PS* derived from kty


@pytest.fixture(scope="session")
def ed_jwk(ed_key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    return public_jwk(ed_key, "ed-1")


@pytest.fixture
def key_source(
    ec_jwk: dict[str, Any], rsa_jwk: dict[str, Any], ed_jwk: dict[str, Any]
) -> CountingKeySource:
    return CountingKeySource(
        {
            jwk["kid"]: verification_key_from_jwk(jwk, kid=jwk["kid"])
            for jwk in (ec_jwk, rsa_jwk, ed_jwk)
        }
    )


@pytest.fixture
async def transport() -> AsyncIterator[FastTransport]:
    fast = FastTransport()
    try:
        yield fast
    finally:
        await fast.close()
