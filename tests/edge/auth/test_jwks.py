"""JWKS parsing and JwksCache: single-flight, cooldown, rotation, refresh-ahead, stale-if-error."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edge.auth.errors import AuthError
from edge.auth.jwks import JwksCache, JwksCacheSettings, JwksDocument, JwksError, parse_jwks
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier
from edge.auth.keys import KeysUnavailable
from mesh.config.safe_regex import compile_safe_regex

ISSUER = "https://auth.test"
AUDIENCE = "meshgate"


class FakeJwksEndpoint:
    """An injected fetch: serves ``keys`` with ``max_age``, counts calls, can fail or block."""

    def __init__(self, keys: list[dict[str, Any]], max_age: float | None = 300.0) -> None:
        self.keys = list(keys)
        self.max_age = max_age
        self.calls = 0
        self.failure: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> JwksDocument:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0)  # a real fetch yields: let concurrent callers pile up
        if self.failure is not None:
            raise self.failure
        return JwksDocument({"keys": list(self.keys)}, self.max_age)


async def settle() -> None:
    """Let background tasks started by the cache run to completion."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def second_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def endpoint(ec_jwk: dict[str, Any]) -> FakeJwksEndpoint:
    return FakeJwksEndpoint([ec_jwk])


def verifier_over(cache: JwksCache, clock: Any) -> JwtVerifier:
    return JwtVerifier(JwtSettings(issuer=ISSUER, audience=AUDIENCE, leeway_s=0), cache, clock)


# ---------------------------------------------------------------- parsing


def test_parse_jwks_keeps_usable_keys_and_records_why_others_were_skipped(
    ec_jwk: dict[str, Any], rsa_jwk: dict[str, Any], ed_jwk: dict[str, Any], jwk_of: Any
) -> None:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    members: list[Any] = [
        ec_jwk,
        rsa_jwk,
        ed_jwk,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {**ec_jwk, "kid": "private", "d": "AAAA"},
        {**ec_jwk, "kid": "enc", "use": "enc"},
        {**ec_jwk, "kid": "ops", "key_ops": ["encrypt"]},
        {**rsa_jwk, "kid": "rsa-as-hs", "alg": "HS256"},
        {**ec_jwk, "kid": "ec-as-es384", "alg": "ES384"},
        jwk_of(small_rsa, "small"),
        {**ec_jwk, "kid": "../../dev/null"},
        {k: v for k, v in ec_jwk.items() if k != "kid"},
        {**rsa_jwk, "kid": "ec-1"},  # duplicate kid: must not shadow the first
        {"kty": "XYZ", "kid": "weird"},
        {**ec_jwk, "kid": "bad-point", "x": ec_jwk["y"]},
        "not an object",
    ]
    keyset = parse_jwks({"keys": members})
    assert sorted(keyset.keys) == ["ec-1", "ed-1", "rsa-1"]
    assert keyset.keys["ec-1"].algorithms == {"ES256"}
    assert keyset.keys["rsa-1"].algorithms == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert keyset.keys["ed-1"].algorithms == {"EdDSA"}
    assert keyset.keys["ec-1"].for_algorithm("HS256") is None
    assert [(r.kid, r.reason) for r in keyset.rejected] == [
        ("hmac", "symmetric key refused"),
        ("private", "private key material published"),
        ("enc", "key use is not sig"),
        ("ops", "key_ops does not allow verify"),
        ("rsa-as-hs", "alg does not match key type"),
        ("ec-as-es384", "alg does not match key type"),
        ("small", "RSA key too small"),
        (None, "invalid kid"),
        (None, "missing kid"),
        ("ec-1", "duplicate kid"),
        ("weird", "unsupported kty"),
        ("bad-point", "invalid key material"),
        (None, "not an object"),
    ]


@pytest.mark.parametrize(
    "body", [None, [], {"keys": "x"}, {"keys": []}, {"keys": [{"kty": "oct", "kid": "a"}]}]
)
def test_parse_jwks_refuses_documents_without_usable_keys(body: Any) -> None:
    with pytest.raises(JwksError):
        parse_jwks(body)


def test_parse_jwks_bounds_the_number_of_keys(ec_jwk: dict[str, Any]) -> None:
    keyset = parse_jwks({"keys": [{**ec_jwk, "kid": f"k{n}"} for n in range(70)]}, max_keys=64)
    assert len(keyset.keys) == 64
    assert {r.reason for r in keyset.rejected} == {"too many keys"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cooldown_s": 0},
        {"default_max_age_s": -1},
        {"default_max_age_s": 10, "max_max_age_s": 5},
        {"refresh_ahead_fraction": 0},
        {"refresh_ahead_fraction": 1.5},
        {"max_stale_s": -1},
        {"fetch_timeout_s": 0},
        {"kid_pattern": "("},
    ],
)
def test_cache_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwksCacheSettings(**kwargs)


def test_a_kid_pattern_re2_cannot_run_is_refused_saying_so() -> None:
    with pytest.raises(ValueError) as caught:
        JwksCacheSettings(kid_pattern="(?<=k)[0-9]+")
    assert str(caught.value) == (
        "kid_pattern is not a valid regular expression: RE2 syntax is required (linear-time "
        "matching: no backreferences, lookaround or possessive quantifiers): "
        "invalid perl operator: (?<="
    )


def test_parse_jwks_matches_kids_with_the_given_re2_pattern(ec_jwk: dict[str, Any]) -> None:
    members = [{**ec_jwk, "kid": "a" * 4096 + "!"}, {**ec_jwk, "kid": "aaa"}]
    started = time.monotonic()
    keyset = parse_jwks({"keys": members}, kid_pattern=compile_safe_regex("(a+)+$"))
    assert time.monotonic() - started < 5.0  # Python's re would not return on the first kid
    assert list(keyset.keys) == ["aaa"]
    assert [(r.kid, r.reason) for r in keyset.rejected] == [(None, "invalid kid")]


# ---------------------------------------------------------------- single flight and cooldown


async def test_concurrent_first_lookups_share_one_fetch(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    endpoint.gate = asyncio.Event()
    cache = JwksCache(endpoint, clock)
    waiters = [asyncio.create_task(cache.get_key("ec-1")) for _ in range(50)]
    await settle()
    assert endpoint.calls == 1
    endpoint.gate.set()
    keys = await asyncio.gather(*waiters)
    assert all(key is not None and key.kid == "ec-1" for key in keys)
    assert endpoint.calls == 1


async def test_1000_concurrent_random_unknown_kids_cause_at_most_one_fetch_per_cooldown(
    endpoint: FakeJwksEndpoint, clock: Any, tokens: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    cache = JwksCache(endpoint, clock, JwksCacheSettings(cooldown_s=30))
    verifier = verifier_over(cache, clock)
    assert await cache.refresh()
    assert endpoint.calls == 1

    async def flood(count: int) -> list[BaseException | Any]:
        forged = [tokens.sign(ec_key, secrets.token_urlsafe(12)) for _ in range(count)]
        return await asyncio.gather(
            *(verifier.verify(token) for token in forged), return_exceptions=True
        )

    # Within the cooldown of the priming fetch: no fetch at all.
    results = await flood(1000)
    assert all(isinstance(r, AuthError) and r.description == "unknown kid" for r in results)
    assert endpoint.calls == 1

    # Cooldown over: 1,000 concurrent unknown kids share exactly one refetch.
    clock.advance(30)
    results = await flood(1000)
    assert all(isinstance(r, AuthError) and r.description == "unknown kid" for r in results)
    assert endpoint.calls == 2
    stats = cache.stats()
    assert stats.unknown_kid_fetches == 1
    assert stats.unknown_kid_refused == 1000

    # A sustained flood over ten minutes, 25 forged kids per second.
    start_calls, elapsed = endpoint.calls, 0.0
    for _ in range(600):
        clock.advance(1)
        elapsed += 1
        await flood(25)
        await settle()
    assert endpoint.calls - start_calls <= elapsed // 30 + 1
    # The genuine key kept working throughout.
    assert (await verifier.verify(tokens.sign(ec_key, "ec-1"))).subject == "alice"


async def test_a_failing_fetch_also_starts_the_cooldown(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    endpoint.failure = ConnectionError("auth service down")
    cache = JwksCache(endpoint, clock)
    for _ in range(10):
        with pytest.raises(KeysUnavailable):
            await cache.get_key("ec-1")
    assert endpoint.calls == 1
    clock.advance(30)
    endpoint.failure = None
    assert await cache.get_key("ec-1") is not None
    assert endpoint.calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    endpoint.gate = asyncio.Event()
    cache = JwksCache(endpoint, clock)
    first = asyncio.create_task(cache.get_key("ec-1"))
    second = asyncio.create_task(cache.get_key("ec-1"))
    await settle()
    first.cancel()
    endpoint.gate.set()
    key = await second
    assert key is not None
    assert endpoint.calls == 1


# ---------------------------------------------------------------- rotation


async def test_a_rotated_key_is_accepted_on_first_use_when_the_cooldown_has_passed(
    endpoint: FakeJwksEndpoint,
    clock: Any,
    tokens: Any,
    ec_key: ec.EllipticCurvePrivateKey,
    second_ec_key: ec.EllipticCurvePrivateKey,
    jwk_of: Any,
) -> None:
    cache = JwksCache(endpoint, clock)
    verifier = verifier_over(cache, clock)
    await verifier.verify(tokens.sign(ec_key, "ec-1"))
    clock.advance(100)  # longer than the cooldown, shorter than refresh-ahead (240 s)

    endpoint.keys.append(jwk_of(second_ec_key, "ec-2"))  # the auth service rotates
    claims = await verifier.verify(tokens.sign(second_ec_key, "ec-2"))
    assert claims.subject == "alice"
    assert endpoint.calls == 2  # the first token with the new kid fetched at once
    # The old key is still published (grace period) and still verifies.
    assert (await verifier.verify(tokens.sign(ec_key, "ec-1", jti="x"))).subject == "alice"


async def test_a_key_published_within_the_cooldown_waits_for_the_cooldown(
    endpoint: FakeJwksEndpoint,
    clock: Any,
    tokens: Any,
    ec_key: ec.EllipticCurvePrivateKey,
    second_ec_key: ec.EllipticCurvePrivateKey,
    jwk_of: Any,
) -> None:
    """The documented trade-off: flood protection delays a just-published kid by < cooldown."""
    cache = JwksCache(endpoint, clock, JwksCacheSettings(cooldown_s=30))
    verifier = verifier_over(cache, clock)
    await cache.refresh()
    endpoint.keys.append(jwk_of(second_ec_key, "ec-2"))
    clock.advance(5)
    new_token = tokens.sign(second_ec_key, "ec-2")
    with pytest.raises(AuthError, match="unknown kid"):
        await verifier.verify(new_token)
    assert endpoint.calls == 1
    clock.advance(25)  # exactly one cooldown after the last fetch
    assert (await verifier.verify(new_token)).subject == "alice"
    assert endpoint.calls == 2


async def test_a_removed_key_stops_verifying_after_the_next_refresh(
    endpoint: FakeJwksEndpoint,
    clock: Any,
    tokens: Any,
    ec_key: ec.EllipticCurvePrivateKey,
    second_ec_key: ec.EllipticCurvePrivateKey,
    jwk_of: Any,
) -> None:
    cache = JwksCache(endpoint, clock)
    assert await cache.get_key("ec-1") is not None
    endpoint.keys = [jwk_of(second_ec_key, "ec-2")]
    clock.advance(240)  # refresh-ahead point of a 300 s max-age
    assert await cache.get_key("ec-1") is not None  # served while the refresh runs
    await settle()
    assert endpoint.calls == 2
    assert await cache.get_key("ec-1") is None  # within the cooldown: no new fetch
    assert endpoint.calls == 2


# ---------------------------------------------------------------- refresh ahead, max-age


async def test_refresh_ahead_runs_in_the_background_at_the_fraction_of_max_age(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    endpoint.max_age = 100
    cache = JwksCache(endpoint, clock, JwksCacheSettings(refresh_ahead_fraction=0.8))
    await cache.refresh()
    clock.advance(79)
    await cache.get_key("ec-1")
    await settle()
    assert endpoint.calls == 1
    clock.advance(1)
    endpoint.gate = asyncio.Event()  # the refresh hangs: the lookup must not wait for it
    assert await cache.get_key("ec-1") is not None
    await settle()
    assert endpoint.calls == 2  # started, still hanging
    assert await cache.get_key("ec-1") is not None
    endpoint.gate.set()
    await settle()
    assert cache.age() == 0


@pytest.mark.parametrize(
    ("max_age", "refresh_after"),
    [(None, 240.0), (0.0, 30.0), (10_000_000.0, 86_400 * 0.8), (50.0, 40.0)],
)
async def test_max_age_defaults_and_clamps(
    endpoint: FakeJwksEndpoint, clock: Any, max_age: float | None, refresh_after: float
) -> None:
    endpoint.max_age = max_age
    cache = JwksCache(endpoint, clock)
    await cache.refresh()
    clock.advance(refresh_after - 0.5)
    await cache.get_key("ec-1")
    await settle()
    assert endpoint.calls == 1
    clock.advance(0.5)
    await cache.get_key("ec-1")
    await settle()
    assert endpoint.calls == 2


# ---------------------------------------------------------------- stale-if-error


async def test_stale_if_error_keeps_serving_the_last_good_keys_and_shows_their_age(
    endpoint: FakeJwksEndpoint, clock: Any, tokens: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    cache = JwksCache(endpoint, clock)
    verifier = verifier_over(cache, clock)
    await cache.refresh()
    endpoint.failure = ConnectionError("connection refused")

    clock.advance(3600)  # an hour past a 300 s max-age, refreshes failing all along
    for _ in range(5):
        token = tokens.sign(ec_key, "ec-1", jti=secrets.token_hex(4))
        assert (await verifier.verify(token)).subject == "alice"
        await settle()
        clock.advance(31)
    stats = cache.stats()
    assert stats.stale
    assert stats.failures == 5
    assert stats.fetches == 6
    assert stats.age_s == cache.age() == 3600 + 5 * 31
    assert stats.last_error == "ConnectionError: connection refused"
    assert stats.keys == 1

    endpoint.failure = None
    clock.advance(31)
    await cache.get_key("ec-1")
    await settle()
    assert cache.age() == 0
    assert cache.stats().last_error is None
    assert not cache.stats().stale


async def test_an_unusable_document_is_a_failure_and_keeps_the_previous_keys(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    await_cache = JwksCache(endpoint, clock)
    assert await await_cache.refresh()
    endpoint.keys = [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]
    clock.advance(30)
    assert not await await_cache.refresh()
    assert await await_cache.get_key("ec-1") is not None
    assert await_cache.stats().last_error == "JwksError: no usable keys"


async def test_max_stale_bounds_how_long_old_keys_serve(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    cache = JwksCache(endpoint, clock, JwksCacheSettings(max_stale_s=60))
    await cache.refresh()
    endpoint.failure = ConnectionError("down")
    clock.advance(300 + 60)
    assert await cache.get_key("ec-1") is not None  # exactly at the bound: still served
    await settle()
    clock.advance(31)
    with pytest.raises(KeysUnavailable):
        await cache.get_key("ec-1")


async def test_a_hanging_fetch_times_out_as_a_failure(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    cache = JwksCache(endpoint, clock, JwksCacheSettings(fetch_timeout_s=0.05))
    assert await cache.refresh()
    endpoint.gate = asyncio.Event()  # never set
    assert not await cache.refresh()
    assert cache.stats().last_error == "TimeoutError"
    assert await cache.get_key("ec-1") is not None


async def test_age_is_none_before_the_first_fetch_and_aclose_cancels(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    cache = JwksCache(endpoint, clock)
    assert cache.age() is None
    assert cache.stats().keys == 0
    endpoint.gate = asyncio.Event()
    waiter = asyncio.create_task(cache.get_key("ec-1"))
    await settle()
    await cache.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_on_fetch_hears_every_fetch_that_ends_with_its_outcome(
    endpoint: FakeJwksEndpoint, clock: Any
) -> None:
    heard: list[tuple[bool, float]] = []
    cache = JwksCache(endpoint, clock, on_fetch=lambda ok, s: heard.append((ok, s)))
    assert await cache.refresh()
    endpoint.failure = ConnectionError("auth service down")
    assert not await cache.refresh()
    endpoint.failure = None
    endpoint.gate = asyncio.Event()  # never opened: this fetch is cancelled, not heard
    task = asyncio.get_running_loop().create_task(cache.refresh())
    await asyncio.sleep(0)
    await cache.aclose()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [ok for ok, _ in heard] == [True, False]
    assert all(0 <= seconds < 5 for _, seconds in heard)
