"""JwtVerifier: the hostile-token table, valid tokens, leeway, and the claims cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edge.auth.errors import AuthError
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier

ISSUER = "https://auth.test"
AUDIENCE = "meshgate"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64json(header)}.{b64json(claims)}.{signature}"


def hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HS256 by hand: PyJWT refuses to use a public key as an HMAC secret, attackers do not."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def pem(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class Ctx:
    """Everything a row of the hostile table may need to forge its token."""

    tokens: Any  # conftest.TokenFactory
    ec_key: ec.EllipticCurvePrivateKey
    rsa_key: rsa.RSAPrivateKey
    attacker_key: ec.EllipticCurvePrivateKey
    ec_jwk: dict[str, Any]
    rsa_jwk: dict[str, Any]

    def claims(self, **overrides: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.tokens.claims(**overrides)
        return result

    def es(self, kid: str | None = "ec-1", **kwargs: Any) -> str:
        token: str = self.tokens.sign(self.ec_key, kid, **kwargs)
        return token


def _tamper_payload(ctx: Ctx) -> str:
    header, _, signature = ctx.es().split(".")
    return f"{header}.{b64json(ctx.claims(roles=['admin']))}.{signature}"


def _padded(ctx: Ctx) -> str:
    header, payload, signature = ctx.es().split(".")
    return f"{header}=.{payload}.{signature}"


def _noncanonical_signature(ctx: Ctx) -> str:
    """Same signature bytes, other spelling: set an unused trailing bit."""
    header, payload, signature = ctx.es().split(".")
    assert len(signature) % 4 == 2  # 64-byte ES256 signature: 4 unused bits at the end
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    return f"{header}.{payload}.{signature[:-1]}{alphabet[last | 1]}"


def signed_raw(ctx: Ctx, payload: bytes) -> str:
    """A correctly signed JWS over arbitrary payload bytes."""
    return jwt.api_jws.PyJWS().encode(
        payload, ctx.ec_key, algorithm="ES256", headers={"kid": "ec-1"}
    )


NONE_ALGS = ["none", "None", "NONE", "nOnE"]

HOSTILE: list[tuple[str, Callable[[Ctx], str], str]] = [
    *[
        (
            f"alg {alg}",
            lambda ctx, alg=alg: unsigned({"alg": alg, "kid": "ec-1"}, ctx.claims()),
            "alg not allowed",
        )
        for alg in NONE_ALGS
    ],
    (
        "alg none with a signature",
        lambda ctx: unsigned({"alg": "none", "kid": "ec-1"}, ctx.claims(), b64url(b"sig")),
        "alg not allowed",
    ),
    (
        "alg none without kid",
        lambda ctx: unsigned({"alg": "none"}, ctx.claims()),
        "alg not allowed",
    ),
    (
        "HS256 signed with the ES public key (PEM)",
        lambda ctx: hs256(pem(ctx.ec_key), {"alg": "HS256", "kid": "ec-1"}, ctx.claims()),
        "alg not allowed",
    ),
    (
        "HS256 signed with the RS public key (PEM)",
        lambda ctx: hs256(pem(ctx.rsa_key), {"alg": "HS256", "kid": "rsa-1"}, ctx.claims()),
        "alg not allowed",
    ),
    (
        "HS256 signed with the ES public key (JWK)",
        lambda ctx: hs256(
            json.dumps(ctx.ec_jwk).encode(), {"alg": "HS256", "kid": "ec-1"}, ctx.claims()
        ),
        "alg not allowed",
    ),
    (
        "HS256 signed with the RS public key (JWK)",
        lambda ctx: hs256(
            json.dumps(ctx.rsa_jwk).encode(), {"alg": "HS256", "kid": "rsa-1"}, ctx.claims()
        ),
        "alg not allowed",
    ),
    (
        "HS512 with the RS modulus as secret",
        lambda ctx: unsigned(
            {"alg": "HS512", "kid": "rsa-1"}, ctx.claims(), b64url(ctx.rsa_jwk["n"].encode())
        ),
        "alg not allowed",
    ),
    ("kid ../../dev/null", lambda ctx: ctx.es("../../dev/null"), "invalid kid"),
    ("kid of 10 KB", lambda ctx: ctx.es("a" * 10_240), "token too large"),
    ("kid with a NUL", lambda ctx: ctx.es("ec-1\x00"), "invalid kid"),
    ("kid not a string", lambda ctx: unsigned({"alg": "ES256", "kid": 1}, {}, "AA"), "invalid kid"),
    ("no kid", lambda ctx: ctx.es(None), "missing kid"),
    ("unknown kid", lambda ctx: ctx.es("not-published"), "unknown kid"),
    (
        "jku pointing at an attacker's JWKS",
        lambda ctx: ctx.tokens.sign(
            ctx.attacker_key, "attacker", headers={"jku": "https://evil.example/jwks.json"}
        ),
        "key-locating header not allowed",
    ),
    (
        "jku with a published kid",
        lambda ctx: ctx.tokens.sign(
            ctx.attacker_key, "ec-1", headers={"jku": "https://evil.example/jwks.json"}
        ),
        "key-locating header not allowed",
    ),
    (
        "x5u",
        lambda ctx: ctx.tokens.sign(
            ctx.attacker_key, "ec-1", headers={"x5u": "https://evil.example/cert.pem"}
        ),
        "key-locating header not allowed",
    ),
    (
        "embedded jwk",
        lambda ctx: ctx.tokens.sign(
            ctx.attacker_key,
            "ec-1",
            headers={"jwk": jwt.algorithms.ECAlgorithm.to_jwk(ctx.attacker_key.public_key(), True)},
        ),
        "key-locating header not allowed",
    ),
    (
        "x5c",
        lambda ctx: ctx.tokens.sign(ctx.attacker_key, "ec-1", headers={"x5c": ["MIIB"]}),
        "key-locating header not allowed",
    ),
    (
        "signed by another key under our kid",
        lambda ctx: ctx.tokens.sign(ctx.attacker_key, "ec-1"),
        "signature invalid",
    ),
    ("payload tampered after signing", _tamper_payload, "signature invalid"),
    (
        "empty signature",
        lambda ctx: ctx.es().rsplit(".", 1)[0] + ".",
        "signature invalid",
    ),
    (
        "ES256 header on an RSA kid",
        lambda ctx: unsigned({"alg": "ES256", "kid": "rsa-1"}, ctx.claims(), "AAAA"),
        "alg does not match key",
    ),
    (
        "RS256 header on an EC kid",
        lambda ctx: ctx.tokens.sign(ctx.rsa_key, "ec-1"),
        "alg does not match key",
    ),
    (
        "algorithm outside the allow-list",
        lambda ctx: ctx.tokens.sign(ctx.rsa_key, "rsa-1", alg="PS256"),
        "alg not allowed",
    ),
    ("expired", lambda ctx: ctx.es(exp=int(ctx.tokens.clock()) - 1), "token expired"),
    (
        "nbf in the future",
        lambda ctx: ctx.es(nbf=int(ctx.tokens.clock()) + 60),
        "token not yet valid",
    ),
    (
        "iat in the future",
        lambda ctx: ctx.es(iat=int(ctx.tokens.clock()) + 60),
        "token issued in the future",
    ),
    ("wrong iss", lambda ctx: ctx.es(iss="https://evil.example"), "issuer mismatch"),
    ("iss with a trailing slash", lambda ctx: ctx.es(iss=ISSUER + "/"), "issuer mismatch"),
    ("iss in another case", lambda ctx: ctx.es(iss=ISSUER.upper()), "issuer mismatch"),
    ("no iss", lambda ctx: ctx.es(iss=None), "missing iss"),
    ("wrong aud", lambda ctx: ctx.es(aud="other-service"), "audience mismatch"),
    ("aud list without ours", lambda ctx: ctx.es(aud=["a", "b"]), "audience mismatch"),
    ("aud prefix of ours", lambda ctx: ctx.es(aud=AUDIENCE[:-1]), "audience mismatch"),
    ("aud not strings", lambda ctx: ctx.es(aud=[1, 2]), "invalid aud"),
    ("no aud", lambda ctx: ctx.es(aud=None), "missing aud"),
    ("no exp", lambda ctx: ctx.es(exp=None), "missing exp"),
    ("exp as a string", lambda ctx: ctx.es(exp="9999999999"), "invalid exp"),
    ("exp as a boolean", lambda ctx: ctx.es(exp=True), "invalid exp"),
    ("no sub", lambda ctx: ctx.es(sub=None), "missing sub"),
    ("sub with a newline", lambda ctx: ctx.es(sub="alice\r\nX-User-Role: admin"), "invalid sub"),
    ("roles not a list", lambda ctx: ctx.es(roles="admin"), "invalid roles"),
    ("malformed base64 (bad character)", lambda ctx: "eyJh*GciOi.e30.AAAA", "malformed token"),
    ("malformed base64 (padding)", _padded, "malformed token"),
    ("malformed base64 (non-canonical bits)", _noncanonical_signature, "malformed token"),
    ("malformed base64 (impossible length)", lambda ctx: "eyJhb.e30.AAAA", "malformed token"),
    ("two segments", lambda ctx: ".".join(ctx.es().split(".")[:2]), "malformed token"),
    ("five segments (JWE)", lambda ctx: ctx.es() + ".AAAA.AAAA", "malformed token"),
    ("empty", lambda ctx: "", "malformed token"),
    ("header not JSON", lambda ctx: f"{b64url(b'not json')}.e30.AAAA", "malformed token"),
    ("header a JSON array", lambda ctx: f"{b64json(['ES256'])}.e30.AAAA", "malformed token"),
    (
        "header with duplicate alg",
        lambda ctx: b64url(b'{"alg":"ES256","alg":"none","kid":"ec-1"}') + ".e30.AAAA",
        "malformed token",
    ),
    ("non-ASCII token", lambda ctx: ctx.es() + "\u00e9", "malformed token"),
    (
        "payload not JSON, unsigned",
        lambda ctx: ctx.es().split(".")[0] + ".AAAA.AAAA",
        "signature invalid",
    ),
    ("payload not JSON, signed", lambda ctx: signed_raw(ctx, b"not json"), "malformed token"),
    ("payload a JSON array, signed", lambda ctx: signed_raw(ctx, b"[1, 2]"), "malformed token"),
    (
        "exp Infinity, signed",
        lambda ctx: signed_raw(
            ctx, json.dumps(ctx.claims()).replace('"exp": ', '"exp": Infinity, "x": ').encode()
        ),
        "invalid exp",
    ),
    (
        "crit header",
        lambda ctx: ctx.es(headers={"crit": ["exp"], "exp": 1}),
        "unsupported critical header",
    ),
    (
        "b64 header",
        lambda ctx: unsigned({"alg": "ES256", "kid": "ec-1", "b64": False}, ctx.claims(), "AAAA"),
        "unsupported header parameter",
    ),
    ("no alg", lambda ctx: unsigned({"kid": "ec-1"}, ctx.claims(), "AAAA"), "missing alg"),
    ("over the size limit", lambda ctx: ctx.es(pad="x" * 9000), "token too large"),
]


@pytest.fixture
def ctx(
    tokens: Any,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
    attacker_key: ec.EllipticCurvePrivateKey,
    ec_jwk: dict[str, Any],
    rsa_jwk: dict[str, Any],
) -> Ctx:
    return Ctx(tokens, ec_key, rsa_key, attacker_key, ec_jwk, rsa_jwk)


def make_verifier(key_source: Any, clock: Any, **overrides: Any) -> JwtVerifier:
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE, **{"leeway_s": 0.0, **overrides})
    return JwtVerifier(settings, key_source, clock)


@pytest.mark.parametrize(
    ("build", "description"),
    [pytest.param(build, description, id=name) for name, build, description in HOSTILE],
)
async def test_hostile_token_is_refused_with_a_specific_error(
    ctx: Ctx, key_source: Any, clock: Any, build: Callable[[Ctx], str], description: str
) -> None:
    token = build(ctx)
    verifier = make_verifier(key_source, clock)
    with pytest.raises(AuthError) as refused:
        await verifier.verify(token)
    error = refused.value
    assert (error.status, error.code, error.description) == (401, "invalid_token", description)
    challenge = error.www_authenticate()
    assert challenge.startswith('Bearer error="invalid_token"')
    assert f'error_description="{description}"' in challenge
    # Nothing of the token is reflected: neither whole nor any of its segments.
    rendered = challenge + json.dumps(error.body()) + str(error) + repr(error)
    for segment in [token, *token.split(".")]:
        if len(segment) > 3:
            assert segment not in rendered


async def test_hostile_tokens_never_reach_the_key_source_when_the_header_is_bad(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock)
    for token in (
        unsigned({"alg": "none", "kid": "ec-1"}, ctx.claims()),
        hs256(pem(ctx.ec_key), {"alg": "HS256", "kid": "ec-1"}, ctx.claims()),
        ctx.es("../../dev/null"),
        ctx.tokens.sign(ctx.attacker_key, "x", headers={"jku": "https://evil.example/"}),
    ):
        with pytest.raises(AuthError):
            await verifier.verify(token)
    assert key_source.lookups == 0


async def test_a_10_kb_kid_is_refused_as_invalid_kid_even_under_a_larger_size_limit(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock, max_token_bytes=64 * 1024)
    with pytest.raises(AuthError) as refused:
        await verifier.verify(ctx.es("a" * 10_240))
    assert refused.value.description == "invalid kid"
    assert key_source.lookups == 0


async def test_size_limit_is_checked_before_any_decoding(key_source: Any, clock: Any) -> None:
    verifier = make_verifier(key_source, clock, max_token_bytes=100)
    # Not even base64: refused for its size, so nothing looked at its contents.
    with pytest.raises(AuthError) as refused:
        await verifier.verify("!" * 101)
    assert refused.value.description == "token too large"
    with pytest.raises(AuthError) as refused:
        await verifier.verify("!" * 100)
    assert refused.value.description == "malformed token"


async def test_jku_is_ignored_not_followed_when_refusal_is_disabled(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock, refuse_key_locating_headers=False)
    evil = {"jku": "https://evil.example/jwks.json"}
    with pytest.raises(AuthError) as refused:
        await verifier.verify(ctx.tokens.sign(ctx.attacker_key, "attacker", headers=evil))
    assert refused.value.description == "unknown kid"
    with pytest.raises(AuthError) as refused:
        await verifier.verify(ctx.tokens.sign(ctx.attacker_key, "ec-1", headers=evil))
    assert refused.value.description == "signature invalid"
    # A legitimate token that happens to carry x5c still verifies, on our key.
    claims = await verifier.verify(ctx.es(headers={"x5c": ["MIIB"]}))
    assert claims.subject == "alice"


@pytest.mark.parametrize(
    ("kid", "key_fixture", "alg"),
    [("ec-1", "ec_key", "ES256"), ("rsa-1", "rsa_key", "RS256"), ("ed-1", "ed_key", "EdDSA")],
)
async def test_valid_tokens_verify(
    request: pytest.FixtureRequest,
    tokens: Any,
    key_source: Any,
    clock: Any,
    kid: str,
    key_fixture: str,
    alg: str,
) -> None:
    private_key = request.getfixturevalue(key_fixture)
    token = tokens.sign(private_key, kid, alg=alg, jti="t-1")
    claims = await make_verifier(key_source, clock).verify(token)
    assert claims.subject == "alice"
    assert claims.issuer == ISSUER
    assert claims.audience == (AUDIENCE,)
    assert claims.roles == ("user",)
    assert claims.email == "alice@example.com"
    assert claims.token_id == "t-1"
    assert claims.expires_at == int(clock()) + 300
    assert claims.raw["sub"] == "alice"


async def test_audience_list_containing_ours_and_scope_claim(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    token = ctx.es(aud=["billing", AUDIENCE], scope="orders:read orders:write")
    claims = await make_verifier(key_source, clock).verify(token)
    assert claims.audience == ("billing", AUDIENCE)
    assert claims.scopes == ("orders:read", "orders:write")


async def test_ps256_verifies_against_an_rsa_key_when_allowed(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock, algorithms=frozenset({"PS256"}))
    claims = await verifier.verify(ctx.tokens.sign(ctx.rsa_key, "rsa-1", alg="PS256"))
    assert claims.subject == "alice"


@pytest.mark.parametrize(
    "algorithms", [{"HS256"}, {"ES256", "HS256"}, {"none"}, {"RS256", "NONE"}, set()]
)
def test_symmetric_and_none_algorithms_cannot_be_configured(algorithms: set[str]) -> None:
    with pytest.raises(ValueError):
        JwtSettings(issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset(algorithms))


@pytest.mark.parametrize("leeway", [-1.0, 60.5, 61.0, 3600.0])
def test_leeway_outside_zero_to_sixty_seconds_is_refused(leeway: float) -> None:
    with pytest.raises(ValueError, match="leeway"):
        JwtSettings(issuer=ISSUER, audience=AUDIENCE, leeway_s=leeway)


@pytest.mark.parametrize("kwargs", [{"issuer": ""}, {"audience": ""}, {"max_token_bytes": 0}])
def test_other_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwtSettings(**{"issuer": ISSUER, "audience": AUDIENCE, **kwargs})


def test_settings_defaults() -> None:
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE)
    assert settings.algorithms == frozenset({"ES256", "RS256", "EdDSA"})
    assert settings.leeway_s == 30.0
    assert settings.max_token_bytes == 8192
    assert JwtSettings(issuer=ISSUER, audience=AUDIENCE, leeway_s=60).leeway_s == 60


@pytest.mark.parametrize(
    ("leeway", "skew", "accepted"),
    [(30, 20, True), (10, 20, False), (60, 59, True), (60, 60, False), (0, 0, False)],
)
async def test_leeway_applies_to_exp(
    ctx: Ctx, key_source: Any, clock: Any, leeway: float, skew: int, accepted: bool
) -> None:
    token = ctx.es(exp=int(clock()) - skew, iat=int(clock()) - 600, nbf=int(clock()) - 600)
    verifier = make_verifier(key_source, clock, leeway_s=leeway)
    if accepted:
        assert (await verifier.verify(token)).subject == "alice"
    else:
        with pytest.raises(AuthError, match="token expired"):
            await verifier.verify(token)


@pytest.mark.parametrize(
    ("leeway", "skew", "accepted"), [(30, 20, True), (10, 20, False), (60, 60, True)]
)
async def test_leeway_applies_to_nbf_and_iat(
    ctx: Ctx, key_source: Any, clock: Any, leeway: float, skew: int, accepted: bool
) -> None:
    verifier = make_verifier(key_source, clock, leeway_s=leeway)
    for claim, message in (("nbf", "token not yet valid"), ("iat", "token issued in the future")):
        overrides: dict[str, Any] = {claim: int(clock()) + skew}
        token = ctx.es(**overrides)
        if accepted:
            assert (await verifier.verify(token)).subject == "alice"
        else:
            with pytest.raises(AuthError, match=message):
                await verifier.verify(token)


async def test_repeat_verification_is_a_cache_hit_without_key_lookup_or_signature_check(
    ctx: Ctx, key_source: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = make_verifier(key_source, clock)
    token = ctx.es()
    first = await verifier.verify(token)

    def no_signature_checks(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("signature path re-run on a cache hit")

    monkeypatch.setattr(jwt, "decode", no_signature_checks)
    for _ in range(100):
        assert await verifier.verify(token) is first
    assert key_source.lookups == 1
    stats = verifier.stats()
    assert (stats.cache_hits, stats.verified, stats.cached_entries) == (100, 1, 1)


async def test_cache_entry_expires_at_exp_by_the_injected_clock(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock)
    token = ctx.es(exp=int(clock()) + 100)
    await verifier.verify(token)
    clock.advance(99.9)
    await verifier.verify(token)
    assert key_source.lookups == 1
    clock.advance(0.1)  # now == exp: the entry is gone and the token is expired
    with pytest.raises(AuthError, match="token expired"):
        await verifier.verify(token)
    assert key_source.lookups == 2


async def test_cache_is_bounded_lru(ctx: Ctx, key_source: Any, clock: Any) -> None:
    verifier = make_verifier(key_source, clock, cache_max_entries=2)
    first, second, third = (ctx.es(jti=str(n)) for n in range(3))
    for token in (first, second, first, third):  # third evicts second, the least recent
        await verifier.verify(token)
    assert key_source.lookups == 3
    await verifier.verify(first)
    assert key_source.lookups == 3
    await verifier.verify(second)
    assert key_source.lookups == 4
    assert verifier.stats().cached_entries == 2


async def test_refused_tokens_are_not_cached_and_clear_cache_forgets(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock)
    bad = ctx.es(aud="other")
    for _ in range(2):
        with pytest.raises(AuthError):
            await verifier.verify(bad)
    assert key_source.lookups == 2
    assert verifier.stats().refused == 2
    good = ctx.es()
    await verifier.verify(good)
    verifier.clear_cache()
    await verifier.verify(good)
    assert key_source.lookups == 4


async def test_keys_unavailable_propagates_for_a_503(ctx: Ctx, clock: Any) -> None:
    from edge.auth.keys import KeysUnavailable

    class NoKeys:
        async def get_key(self, kid: str) -> None:
            raise KeysUnavailable("down")

    with pytest.raises(KeysUnavailable):
        await make_verifier(NoKeys(), clock).verify(ctx.es())


async def test_cached_answers_only_for_fully_verified_tokens_until_exp(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock)
    token = ctx.es(exp=int(clock()) + 100)
    assert verifier.cached(token) is None  # never seen
    bad = ctx.es(aud="other")
    with pytest.raises(AuthError):
        await verifier.verify(bad)
    assert verifier.cached(bad) is None  # refused: never cached
    claims = await verifier.verify(token)
    assert verifier.cached(token) is claims
    assert verifier.cached("".join(list(token))) is claims  # equal text, another object
    clock.advance(99.9)
    assert verifier.cached(token) is claims
    clock.advance(0.1)  # at exp
    assert verifier.cached(token) is None
    assert key_source.lookups == 2
    stats = verifier.stats()
    assert (stats.cache_hits, stats.verified, stats.cached_entries) == (3, 1, 0)


async def test_the_claims_cache_is_keyed_by_the_exact_token(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock)
    token = ctx.es()
    await verifier.verify(token)
    first_dot, second_dot = (i for i, c in enumerate(token) if c == ".")
    segments = ((0, first_dot), (first_dot + 1, second_dot), (second_dot + 1, len(token)))
    changed = []  # one character changed in the middle of each segment
    for start, end in segments:
        i = (start + end) // 2
        changed.append(token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :])
    near_misses = [*changed, token + "A", token[:-1], token[1:], f"{token} ", token.swapcase()]
    for near in near_misses:
        assert near != token
        assert verifier.cached(near) is None
    assert verifier.stats().cache_hits == 0
    # One character off in the signature is verified in full, and refused.
    with pytest.raises(AuthError, match="signature invalid"):
        await verifier.verify(changed[-1])
    assert key_source.lookups == 2


async def test_only_strict_compact_tokens_are_ever_cached(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    """What Authenticator.cached relies on: a cached token is b64token syntax, no blanks."""
    verifier = make_verifier(key_source, clock)
    token = ctx.es()
    for spelling in (f"{token} ", f" {token}", f"{token}\t", f"{token}=", f"{token}\n"):
        with pytest.raises(AuthError, match="malformed token"):
            await verifier.verify(spelling)
        assert verifier.cached(spelling) is None
    assert verifier.stats().cached_entries == 0


async def test_cached_never_looks_at_a_token_over_the_size_limit(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock, max_token_bytes=10_000)
    token = ctx.es(pad="x" * 5000)
    await verifier.verify(token)
    assert verifier.cached(token) is not None
    small = make_verifier(key_source, clock, max_token_bytes=len(token) - 1)
    assert small.cached(token) is None


async def test_cached_header_lookup_answers_as_cached_and_counts_hits_alike(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock)
    max_len, get = verifier.cached_header_lookup()
    assert max_len == verifier._settings.max_token_bytes + len("Bearer ")
    token = ctx.es(exp=int(clock()) + 100)
    value = f"Bearer {token}"
    assert get(value) is None
    claims = await verifier.verify(token)
    assert get(value) is claims is verifier.cached(token)
    assert verifier.stats().cache_hits == 2  # one by get, one by cached
    verifier.clear_cache()  # empties the cache get reads, so get stays valid
    assert get(value) is None
    await verifier.verify(token)
    clock.advance(100)  # at exp
    assert get(value) is None


async def test_cached_header_lookup_answers_only_the_plain_bearer_value(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    """Any other spelling of the header, or the bare token, is a miss (not counted)."""
    verifier = make_verifier(key_source, clock)
    _, get = verifier.cached_header_lookup()
    token = ctx.es()
    claims = await verifier.verify(token)
    for other in (
        token,
        f"bearer {token}",
        f"BEARER {token}",
        f"Bearer  {token}",
        f" Bearer {token}",
        f"Bearer {token} ",
        f"Bearer\t{token}",
        f"ApiKey {token}",
        f"Bearer {token[:-1]}",
    ):
        assert get(other) is None, other
    assert verifier.stats().cache_hits == 0
    assert get(f"Bearer {token}") is claims


# --- kid_pattern: RE2, since the kid is the client's ------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "detail"),
    [
        pytest.param(r"(ec)-\1", r"invalid escape sequence: \1", id="backreference"),
        pytest.param("(?!x)[a-z0-9-]+", "invalid perl operator: (?!", id="lookahead"),
        pytest.param("[a-z]++", "bad repetition operator: ++", id="possessive"),
    ],
)
def test_a_kid_pattern_re2_cannot_run_is_refused(pattern: str, detail: str) -> None:
    with pytest.raises(ValueError) as caught:
        JwtSettings(issuer=ISSUER, audience=AUDIENCE, kid_pattern=pattern)
    message = str(caught.value)
    assert message.startswith("kid_pattern is not a valid regular expression: RE2 syntax is")
    assert message.endswith(detail), message


async def test_a_kid_pattern_in_re2_syntax_with_a_python_named_group_works(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    verifier = make_verifier(key_source, clock, kid_pattern="(?P<type>ec|rsa)-[0-9]+")
    assert (await verifier.verify(ctx.es())).subject == "alice"
    with pytest.raises(AuthError, match="invalid kid"):
        await verifier.verify(ctx.es("ed-1"))


async def test_a_hostile_kid_against_a_backtracking_prone_pattern_is_refused_at_once(
    ctx: Ctx, key_source: Any, clock: Any
) -> None:
    # With Python's re, (a+)+$ on 4 KB of a's and a "!" would never return.
    verifier = make_verifier(key_source, clock, kid_pattern="(a+)+$")
    started = time.monotonic()
    with pytest.raises(AuthError, match="invalid kid"):
        await verifier.verify(ctx.es("a" * 4096 + "!"))
    assert time.monotonic() - started < 5.0  # generous: it takes milliseconds
