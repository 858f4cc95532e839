"""The cache feature: its filter only when a route caches, reloads, and the admin listener's
``/cache`` and ``/cache/purge`` (served by the real admin app over a real socket)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from discovery.settings import ConsulSettings
from edge.cache.feature import CacheFeature
from edge.cache.freshness import Timing
from edge.cache.store import Entry
from edge.config import EdgeConfig
from edge.feature import EdgeContext
from edge.filters.cache import CacheFilter
from mesh.admin import build_admin_app
from mesh.server import Listener
from mesh.snapshot import SnapshotStore
from tests.edge.cache.entries import make_entry
from tests.mesh.telemetry.support import Recorder, make_exchange

USERS = {"prefix": "/api/users", "service": "users"}
ORDERS = {"prefix": "/api/orders", "service": "orders"}


def config(*routes: dict[str, Any], **extra: Any) -> EdgeConfig:
    return EdgeConfig.model_validate({"routes": list(routes), **extra})


def feature_for(edge: EdgeConfig, clock: float = 1000.0) -> CacheFeature:
    ctx = EdgeContext(SnapshotStore(), CollectorRegistry(), ConsulSettings())
    return CacheFeature(edge, ctx, clock=lambda: clock)


def stored(
    feature: CacheFeature,
    route: str,
    path: str,
    received: float = 1000.0,
    tags: tuple[str, ...] = (),
) -> Entry:
    entry = make_entry(
        path,
        route=route,
        headers={"ETag": '"v"'},
        body=b"body",
        variant=(("accept-language", "en"),),
        timing=Timing(lifetime=60, initial_age=0, received=received),
        tags=tags,
    )
    assert feature.cache.store.put(entry)
    return entry


def test_no_route_cached_adds_no_filter() -> None:
    feature = feature_for(config(USERS, ORDERS))
    assert feature.before_proxy() == []
    assert feature.before_routing() == [] and feature.after_routing() == []


def test_a_cached_route_adds_the_filter_before_the_proxy() -> None:
    feature = feature_for(config({**USERS, "cache": {}}, ORDERS))
    [only] = feature.before_proxy()
    assert isinstance(only, CacheFilter)


def test_a_reload_adds_and_removes_the_filter_and_purges_changed_routes() -> None:
    cached_users = {**USERS, "cache": {"ttl": "10s"}}
    cached_orders = {**ORDERS, "cache": {}}
    feature = feature_for(config(USERS, ORDERS))
    reload = feature.prepare_reload(config(cached_users, cached_orders))
    assert reload.keys == ("cache.max_bytes", "cache.max_entries")  # shared_purges: a restart
    assert feature.before_proxy() == []  # not before the commit
    reload.commit()
    assert len(feature.before_proxy()) == 1
    users = stored(feature, "users:/api/users", "/api/users/1")
    orders = stored(feature, "orders:/api/orders", "/api/orders/1")
    # users' cache changes, orders' stays: only users' entries go.
    feature.prepare_reload(config({**USERS, "cache": {"ttl": "20s"}}, cached_orders)).commit()
    assert users not in feature.cache.store and orders in feature.cache.store
    # No cache left: no filter, no entries of its routes.
    feature.prepare_reload(config(USERS, ORDERS)).commit()
    assert feature.before_proxy() == [] and len(feature.cache.store) == 0


def test_a_reload_applies_new_bounds_at_once() -> None:
    feature = feature_for(config({**USERS, "cache": {}}))
    for i in range(5):
        stored(feature, "users:/api/users", f"/api/users/{i}")
    feature.prepare_reload(
        config({**USERS, "cache": {}}, cache={"max_entries": 2, "max_bytes": "1MiB"})
    ).commit()
    store = feature.cache.store
    assert (len(store), store.max_entries, store.max_bytes) == (2, 2, 1024 * 1024)
    assert [e.path for e in store] == ["/api/users/4", "/api/users/3"]


@pytest.fixture
async def admin() -> AsyncIterator[tuple[str, CacheFeature]]:
    feature = feature_for(config({**USERS, "cache": {}}, {**ORDERS, "cache": {}}), clock=1010.0)
    app = build_admin_app(
        ready=lambda: (True, {}),
        views={},
        registry=CollectorRegistry(),
        endpoints=feature.admin_endpoints(),
    )
    listener = Listener("admin", app, "127.0.0.1", 0, shutdown_timeout=0.5)
    await listener.start()
    try:
        yield f"http://127.0.0.1:{listener.port}", feature
    finally:
        await listener.stop()


async def call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, data=body) as resp:
        return resp.status, json.loads(await resp.read())


async def test_the_cache_view(admin: tuple[str, CacheFeature]) -> None:
    url, feature = admin
    entry = stored(feature, "users:/api/users", "/api/users/1", tags=("user-1",))
    entry.hits = 3
    stored(feature, "orders:/api/orders", "/api/orders/1")
    feature.cache.results["users:/api/users"] = Counter({"hit": 3, "miss": 1})
    status, view = await call(f"{url}/cache")
    assert status == 200
    assert view["entries"] == 2 and view["bytes"] == feature.cache.store.size > 0
    assert (view["max_entries"], view["max_bytes"], view["evictions"]) == (10_000, 64 * 1024**2, 0)
    assert view["tags"] == 1
    assert view["routes"]["users:/api/users"] == {
        "entries": 1,
        "bytes": entry.size,
        "requests": {"hit": 3, "miss": 1},
    }
    assert "listed" not in view
    _, view = await call(f"{url}/cache?route=users:/api/users")
    assert view["listed"] == [
        {
            "path": "/api/users/1",
            "status": 200,
            "bytes": entry.size,
            "age": 10.0,
            "ttl": 50.0,
            "hits": 3,
            "vary": ["accept-language"],  # names only, never the values
            "tags": ["user-1"],
            "shared": False,
        }
    ]


async def test_purge_by_route_prefix_or_all(admin: tuple[str, CacheFeature]) -> None:
    url, feature = admin
    for path in ("/api/users/1", "/api/users/1/x", "/api/users/10"):
        stored(feature, "users:/api/users", path)
    stored(feature, "orders:/api/orders", "/api/orders/1")
    purge = f"{url}/cache/purge"
    assert (await call(purge, "POST", b'{"prefix": "/api/users/1"}'))[1]["purged"] == 2
    body = b'{"route": "users:/api/users", "prefix": "/api/orders"}'
    assert (await call(purge, "POST", body))[1]["purged"] == 0
    assert (await call(purge, "POST", b'{"route": "users:/api/users"}'))[1]["purged"] == 1
    status, answer = await call(purge, "POST", b'{"all": true}')
    assert (status, answer["purged"]) == (200, 1) and "pid" in answer
    assert len(feature.cache.store) == 0


async def test_purge_by_tags(admin: tuple[str, CacheFeature]) -> None:
    url, feature = admin
    stored(feature, "users:/api/users", "/api/users/7", tags=("user-7",))
    stored(feature, "users:/api/users", "/api/users/7/teams", tags=("user-7", "team-3"))
    stored(feature, "orders:/api/orders", "/api/orders/1", tags=("user-7", "order-1"))
    stored(feature, "orders:/api/orders", "/api/orders/2", tags=("order-2",))
    purge = f"{url}/cache/purge"
    body = b'{"tags": ["user-7"], "route": "orders:/api/orders"}'
    assert (await call(purge, "POST", body))[1]["purged"] == 1
    assert (await call(purge, "POST", b'{"tags": ["team-3", "user-7"]}'))[1]["purged"] == 2
    assert (await call(purge, "POST", b'{"tags": ["user-7"]}'))[1]["purged"] == 0
    assert [e.path for e in feature.cache.store] == ["/api/orders/2"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "give"),
        (b"not json", "not JSON"),
        (b"[1]", "give"),
        (b"{}", "give"),
        (b'{"path": "/x"}', "unknown key 'path'"),
        (b'{"prefix": "api"}', "starting with '/'"),
        (b'{"route": 7}', "route:"),
        (b'{"all": false}', "only true"),
        (b'{"all": true, "route": "r"}', "not with route"),
        (b'{"all": true, "tags": ["t"]}', "not with route, prefix or tags"),
        (b'{"tags": "user-7"}', "tags: a non-empty list"),
        (b'{"tags": []}', "tags: a non-empty list"),
        (b'{"tags": ["a b"]}', "no space or comma"),
        (b'{"tags": [7]}', "non-empty string"),
        (b'{"tags": [' + b'"t",' * 1000 + b'"t"]}', "at most 1000"),
    ],
)
async def test_a_bad_purge_is_a_400_problem(
    admin: tuple[str, CacheFeature], body: bytes, detail: str
) -> None:
    url, feature = admin
    stored(feature, "users:/api/users", "/api/users/1")
    status, problem = await call(f"{url}/cache/purge", "POST", body)
    assert status == 400 and detail in problem["detail"]
    assert problem["type"].endswith("/bad-purge")
    assert len(feature.cache.store) == 1


def test_an_outcome_is_counted_on_the_span_and_in_the_attrs() -> None:
    recorder = Recorder(sampler_ratio=1.0)
    feature = feature_for(config({**USERS, "cache": {}}))
    sampled = make_exchange()
    trace = recorder.tracing.start_request(sampled)
    feature.cache.outcome(sampled, "users:/api/users", "stale_if_error")
    trace.end_server(sampled, 200, None, None)
    [span] = recorder.spans
    assert span.attributes is not None
    assert span.attributes["meshgate.cache.result"] == "stale_if_error"
    assert sampled.attrs["cache"] == "stale_if_error"
    untraced = make_exchange()
    feature.cache.outcome(untraced, "users:/api/users", "hit")  # no span: nothing to set
    assert untraced.attrs["cache"] == "hit"
    assert feature.cache.results["users:/api/users"] == Counter({"stale_if_error": 1, "hit": 1})
