"""The cache's configuration: defaults, the policy it gives, and refusals naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cache.config import CacheStoreConfig, RouteCacheConfig
from edge.cache.key import KeySpec
from edge.cache.policy import CachePolicy
from edge.config import EdgeConfig
from edge.gateway import config_routes
from tests.edge.refused_config import assert_refused

ROUTE = "routes:\n  - prefix: /api/users\n    service: users\n    cache: "


def test_defaults() -> None:
    assert CacheStoreConfig() == CacheStoreConfig(max_bytes=64 * 1024**2, max_entries=10_000)
    assert RouteCacheConfig().policy() == CachePolicy(
        ttl=None,
        max_body_size=1024**2,
        head=True,
        convert_head=True,
        fill_on_range=True,
        key=KeySpec((), "all"),
        stale_while_revalidate=0.0,
        stale_if_error=0.0,
        lock=True,
        lock_timeout=5.0,
        tag_header="surrogate-key",
        targeted=("meshgate-cache-control",),
    )
    assert RouteCacheConfig(tag_header=None).policy().tag_header is None
    assert RouteCacheConfig(targeted_fields=()).policy().targeted == ()
    # Without HEAD, no HEAD is converted, whatever the default says.
    assert RouteCacheConfig(methods=("GET",)).policy().convert_head is False
    off = RouteCacheConfig(convert_head=False, fill_on_range=False).policy()
    assert (off.head, off.convert_head, off.fill_on_range) == (True, False, False)
    assert EdgeConfig().cache == CacheStoreConfig()


def test_a_route_cache_becomes_the_route_policy() -> None:
    config = EdgeConfig.model_validate(
        {
            "routes": [
                {
                    "prefix": "/api/users",
                    "service": "users",
                    "cache": {
                        "ttl": "30s",
                        "max_body_size": "64KiB",
                        "methods": ["get"],
                        "fill_on_range": False,
                        "key": {"headers": ["Accept-Language"], "query": ["page", "lang"]},
                        "stale_while_revalidate": "10s",
                        "stale_if_error": "5m",
                        "lock": False,
                        "lock_timeout": "250ms",
                        "tag_header": "Cache-Tag",
                        "targeted_fields": ["Acme-Cache-Control", "CDN-Cache-Control"],
                    },
                },
                {"prefix": "/api/orders", "service": "orders"},
            ]
        }
    )
    cached, plain = config_routes(config)
    assert plain.cache is None and "cache" not in plain.options
    assert cached.cache == CachePolicy(
        ttl=30.0,
        max_body_size=65536,
        head=False,
        convert_head=False,
        fill_on_range=False,
        key=KeySpec(("accept-language",), ("page", "lang")),
        stale_while_revalidate=10.0,
        stale_if_error=300.0,
        lock=False,
        lock_timeout=0.25,
        tag_header="cache-tag",
        targeted=("acme-cache-control", "cdn-cache-control"),
    )
    assert "cache" not in cached.options  # a routing key: the route's own field
    assert cached.describe()["cache"] == {
        "ttl": 30.0,
        "max_body_size": 65536,
        "methods": ["GET"],
        "convert_head": False,
        "fill_on_range": False,
        "key": {"headers": ["accept-language"], "query": ["page", "lang"]},
        "stale_while_revalidate": 10.0,
        "stale_if_error": 300.0,
        "lock": False,
        "lock_timeout": 0.25,
        "tag_header": "cache-tag",
        "targeted_fields": ["acme-cache-control", "cdn-cache-control"],
    }


@pytest.mark.parametrize(
    ("value", "key_path", "problem"),
    [
        ("{methods: [GET, POST]}", "routes[0].cache.methods", "only GET and HEAD"),
        ("{methods: [HEAD]}", "routes[0].cache.methods", "GET is required"),
        ("{ttl: 0s}", "routes[0].cache.ttl", "must be longer than 0"),
        ("{ttl: soon}", "routes[0].cache.ttl", "expected a duration"),
        ("{stale_if_error: -1}", "routes[0].cache.stale_if_error", "cannot be negative"),
        ("{lock_timeout: 0}", "routes[0].cache.lock_timeout", "must be longer than 0"),
        ("{max_body_size: 0}", "routes[0].cache.max_body_size", "at least 1 byte"),
        ("{key: {query: []}}", "routes[0].cache.key.query", "write `none`"),
        ("{key: {query: some}}", "routes[0].cache.key.query", "all, none, or a list"),
        ("{key: {query: [page, '']}}", "routes[0].cache.key.query", "not a query parameter"),
        ("{key: {headers: ['Bad Name']}}", "routes[0].cache.key.headers[0]", "header name"),
        ("{tll: 5s}", "routes[0].cache.tll", "unknown key"),
        ("{targeted_fields: [Cache-Control]}", "routes[0].cache.targeted_fields", "overrides"),
        (
            "{targeted_fields: [CDN-Cache-Control, cdn-cache-control]}",
            "routes[0].cache.targeted_fields",
            "listed twice",
        ),
        ("{targeted_fields: ['a b']}", "routes[0].cache.targeted_fields[0]", "header name"),
        ("{methods: [GET], convert_head: true}", "routes[0].cache", "methods leaves HEAD out"),
        ("{methods: [GET], convert_head: false}", "routes[0].cache", "methods leaves HEAD out"),
        ("{convert_head: maybe}", "routes[0].cache.convert_head", "bool"),
        ("{fill_on_range: 2}", "routes[0].cache.fill_on_range", "bool"),
    ],
)
def test_bad_route_cache_is_refused_naming_the_key(
    tmp_path: Path, value: str, key_path: str, problem: str
) -> None:
    assert_refused(tmp_path, ROUTE + value, key_path, problem)


def test_a_body_limit_the_store_cannot_hold_is_refused(tmp_path: Path) -> None:
    assert_refused(
        tmp_path,
        "cache: {max_bytes: 1MiB}\n" + ROUTE + "{max_body_size: 2MiB}",
        "",
        "routes[0].cache.max_body_size: 2097152 bytes is more than cache.max_bytes",
    )


@pytest.mark.parametrize(
    ("value", "key_path", "problem"),
    [
        ("{max_bytes: 0}", "cache.max_bytes", "at least 1 byte"),
        ("{max_entries: 0}", "cache.max_entries", "greater than or equal to 1"),
        ("{shared_purges: {url: 'http://r:6379'}}", "cache.shared_purges.url", "redis://"),
        ("{shared_purges: {max_length: 0}}", "cache.shared_purges.max_length", "or equal to 1"),
        ("{shared_purges: {stream: ''}}", "cache.shared_purges.stream", "at least 1 character"),
        ("{shared_purges: {timeout: 0}}", "cache.shared_purges.timeout", "longer than 0"),
    ],
)
def test_bad_store_bounds_are_refused(
    tmp_path: Path, value: str, key_path: str, problem: str
) -> None:
    assert_refused(tmp_path, f"cache: {value}", key_path, problem)
