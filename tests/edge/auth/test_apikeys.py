"""The API key store against a real Redis: digests only, create / look up / revoke / list."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from demo.processes import RedisServer
from edge.auth.apikeys import (
    ApiKeyError,
    ApiKeyStore,
    generate_key,
    is_key_id,
    key_digest,
    key_id_of,
)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


def test_key_format() -> None:
    key, key_id = generate_key()
    assert key.startswith(f"mgk_{key_id}_") and len(key) == 4 + 12 + 1 + 43
    assert key_id_of(key) == key_id and is_key_id(key_id)
    assert generate_key()[0] != key
    for bad in ("", "mgk_", key + "x", key.replace("mgk", "abc"), "mgk_XYZ_" + "A" * 43):
        assert key_id_of(bad) is None
    assert key_digest(key) == hashlib.sha256(key.encode()).hexdigest()


async def test_create_lookup_list_revoke(redis: Redis) -> None:
    store = ApiKeyStore(redis)
    new = await store.create("acme", ["partner", "partner", "reports"], "gold", now=1000.0)
    assert new.record.roles == ("partner", "reports")
    assert await store.lookup(new.key) == new.record
    assert await store.lookup(new.key[:-1] + ("A" if new.key[-1] != "A" else "B")) is None
    assert await store.lookup("garbage") is None
    other = await store.create("globex", now=2000.0)
    assert other.record.plan is None and other.record.roles == ()
    assert [r.key_id for r in await store.list()] == [new.record.key_id, other.record.key_id]

    # Nothing in Redis holds a key or its secret, only digests.
    stored: list[bytes] = []
    async for name in redis.scan_iter("*"):
        stored.append(name)
        if await redis.type(name) == b"hash":
            for field, value in (await redis.hgetall(name)).items():
                stored += [field, value]
    for key in (new.key, other.key):
        secret = key.split("_", 2)[2].encode()
        assert not any(secret in item for item in stored)
    assert any(key_digest(new.key).encode() in item for item in stored)

    assert await store.revoke(new.record.key_id) == new.record  # by id
    assert await store.lookup(new.key) is None
    assert await store.revoke(new.record.key_id) is None
    assert await store.revoke(other.key) == other.record  # by key
    assert await store.list() == []
    assert await redis.dbsize() == 0


async def test_invalid_input_is_refused(redis: Redis) -> None:
    store = ApiKeyStore(redis)
    with pytest.raises(ApiKeyError, match="consumer"):
        await store.create("bad name")
    with pytest.raises(ApiKeyError, match="role"):
        await store.create("acme", ["a,b"])
    with pytest.raises(ApiKeyError, match="plan"):
        await store.create("acme", plan="")
    with pytest.raises(ApiKeyError, match="expected an API key"):
        await store.revoke("nonsense")


async def test_prefixes_keep_stores_apart(redis: Redis) -> None:
    a, b = ApiKeyStore(redis, "a:"), ApiKeyStore(redis, "b:")
    new = await a.create("acme")
    assert await b.lookup(new.key) is None
    assert await b.list() == []
