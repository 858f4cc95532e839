"""API key verification: cached look-ups (the revocation bound), single flight, failures."""

from __future__ import annotations

import asyncio

import pytest

from edge.auth.apikey_verifier import ApiKeysUnavailable, ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord, generate_key
from edge.auth.errors import AuthError
from tests.edge.auth.conftest import FakeClock

KEY, KEY_ID = generate_key()
RECORD = ApiKeyRecord(KEY_ID, "acme", ("partner",), "gold", 0.0)


class Store:
    def __init__(self) -> None:
        self.live = {KEY: RECORD}
        self.calls = 0
        self.fail = False
        self.delay = 0.0

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("redis down")
        return self.live.get(key)


async def test_lookups_are_cached_for_the_ttl_so_revocation_shows_within_it(
    clock: FakeClock,
) -> None:
    store = Store()
    verifier = ApiKeyVerifier(store.lookup, clock, cache_ttl_s=5)
    assert await verifier.verify(KEY) is RECORD
    assert await verifier.verify(KEY) is RECORD
    assert store.calls == 1
    del store.live[KEY]  # revoked
    clock.advance(4.9)
    assert await verifier.verify(KEY) is RECORD  # still cached
    clock.advance(0.1)
    with pytest.raises(AuthError) as caught:
        await verifier.verify(KEY)
    assert caught.value.description == "unknown api key"
    assert verifier.stats().lookups == 2 and verifier.stats().cache_hits == 2


async def test_unknown_keys_are_cached_too_and_malformed_ones_never_looked_up(
    clock: FakeClock,
) -> None:
    store = Store()
    verifier = ApiKeyVerifier(store.lookup, clock, cache_ttl_s=5)
    unknown, _ = generate_key()
    for _ in range(3):
        with pytest.raises(AuthError, match="unknown api key"):
            await verifier.verify(unknown)
    assert store.calls == 1
    for bad in ("secret", "mgk_" + "x" * 300, KEY + "x"):
        with pytest.raises(AuthError, match="malformed api key"):
            await verifier.verify(bad)
    assert store.calls == 1


async def test_concurrent_requests_share_one_lookup(clock: FakeClock) -> None:
    store = Store()
    store.delay = 0.05
    verifier = ApiKeyVerifier(store.lookup, clock)
    results = await asyncio.gather(*(verifier.verify(KEY) for _ in range(20)))
    assert all(r is RECORD for r in results) and store.calls == 1


async def test_a_failing_store_is_unavailable_and_not_cached(clock: FakeClock) -> None:
    store = Store()
    store.fail = True
    verifier = ApiKeyVerifier(store.lookup, clock)
    with pytest.raises(ApiKeysUnavailable):
        await verifier.verify(KEY)
    store.fail = False
    assert await verifier.verify(KEY) is RECORD
    assert verifier.stats().failures == 1


async def test_a_slow_store_times_out(clock: FakeClock) -> None:
    store = Store()
    store.delay = 1.0
    verifier = ApiKeyVerifier(store.lookup, clock, timeout_s=0.05)
    with pytest.raises(ApiKeysUnavailable):
        await verifier.verify(KEY)


async def test_cached_answers_what_verify_would_from_its_cache_alone(clock: FakeClock) -> None:
    store = Store()
    verifier = ApiKeyVerifier(store.lookup, clock, cache_ttl_s=5)
    unknown, _ = generate_key()
    assert verifier.cached(KEY) is None and verifier.cached(unknown) is None
    assert await verifier.verify(KEY) is RECORD
    with pytest.raises(AuthError, match="unknown api key"):
        await verifier.verify(unknown)
    assert verifier.cached(KEY) is RECORD
    with pytest.raises(AuthError) as caught:
        verifier.cached(unknown)
    assert (caught.value.status, caught.value.description) == (401, "unknown api key")
    for near in (KEY + "x", KEY[:-1], f" {KEY}", f"{KEY} ", KEY.swapcase(), "x" * 300):
        assert verifier.cached(near) is None
    assert store.calls == 2
    assert verifier.stats().cache_hits == 2
    clock.advance(5)
    assert verifier.cached(KEY) is None and verifier.cached(unknown) is None
