"""The edge's response cache through real processes: Consul, the edge, sidecars, demo apps.

The apps' ``/<name>/cached/<anything>`` answers with the caching headers its query
asks for (``demo.service.cached_answer``), and each app counts the requests it gets per
path (``/admin/stats``): what the cache kept from it is what it did not count.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from demo.processes import RedisServer, wait_until
from tests.integration.harness import (
    App,
    Edge,
    Mesh,
    Sidecar,
    descendants,
    hang_up,
    http,
    metrics,
    rewrite,
)
from tests.integration.test_auth import start_auth_mesh

USERS = {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"}
ROUTE = "users:/api/users"


def cached_mesh(
    mesh: Mesh, cache: dict[str, Any], extra: dict[str, Any] | None = None
) -> tuple[App, Edge]:
    users, _, edge = cached_mesh_with_sidecar(mesh, cache, extra)
    return users, edge


def cached_mesh_with_sidecar(
    mesh: Mesh, cache: dict[str, Any], extra: dict[str, Any] | None = None
) -> tuple[App, Sidecar, Edge]:
    """``users`` behind its sidecar, and an edge routing /api/users to it with ``cache``."""
    users = mesh.app("users", "users-1")
    sidecar = mesh.sidecar(users, "users-1")
    return users, sidecar, mesh.edge([{**USERS, "cache": cache}], extra)


def served(app: App, name: str, method: str = "GET") -> int:
    """Requests ``app`` got for ``/users/cached/<name>``."""
    return int(app.stats()["requests"].get(f"{method} /users/cached/{name}", 0))


def results(edge: Edge) -> dict[str, float]:
    return {
        labels["result"]: value
        for labels, value in metrics(edge.admin).get("meshgate_cache_requests_total", [])
        if labels["route"] == ROUTE
    }


def gauge(edge: Edge, name: str) -> float:
    [(_, value)] = metrics(edge.admin)[name]
    return value


def admin(edge: Edge, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{edge.admin}{path}", data=data)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_hits_expiry_conditionals_and_what_is_counted(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {})
    fresh = f"{edge.url}/api/users/cached/a?cc=max-age=60&etag=a1"

    status, headers, body = http(fresh)
    assert (status, headers["cache-status"]) == (200, "meshgate; fwd=miss; stored")
    status, headers, again = http(fresh)
    assert (status, again) == (200, body)
    assert headers["cache-status"].startswith("meshgate; hit; ttl=")
    assert int(headers["age"]) >= 0
    status, headers, empty = http(fresh, method="HEAD")  # HEAD from GET's entry
    assert (status, empty, headers["content-length"]) == (200, b"", str(len(body)))
    status, headers, _ = http(fresh, {"If-None-Match": '"a1"'})
    assert (status, headers["etag"]) == (304, '"a1"')
    assert served(users, "a") == 1 and served(users, "a", "HEAD") == 0

    # Expiry: a stale entry is revalidated with its ETag, and the app's 304 refreshes it.
    short = f"{edge.url}/api/users/cached/b?cc=max-age=2&etag=b1"
    http(short)
    time.sleep(3)
    status, headers, _ = http(short)
    assert status == 200
    assert headers["cache-status"].startswith("meshgate; fwd=stale; fwd-status=304")
    assert served(users, "b") == 2
    assert http(short)[1]["cache-status"].startswith("meshgate; hit")
    assert served(users, "b") == 2
    # Without a validator, an expired entry is fetched again whole.
    plain = f"{edge.url}/api/users/cached/c?cc=max-age=2"
    http(plain)
    time.sleep(3)
    assert http(plain)[1]["cache-status"] == "meshgate; fwd=stale; stored"
    assert served(users, "c") == 2

    assert results(edge) == {"miss": 4.0, "hit": 4.0, "revalidated": 1.0}
    assert gauge(edge, "meshgate_cache_entries") == 3
    view = admin(edge, "/cache")
    assert view["entries"] == 3 and gauge(edge, "meshgate_cache_bytes") == view["bytes"] > 0
    assert view["routes"][ROUTE]["requests"] == {"hit": 4, "miss": 4, "revalidated": 1}
    [route] = [r for r in admin(edge, "/routes")["routes"] if r["prefix"] == "/api/users"]
    assert route["cache"]["methods"] == ["GET", "HEAD"] and route["cache"]["ttl"] is None
    # The access log says it too (stdout, in the edge's log).
    wait_until(lambda: '"cache":"revalidated"' in edge.process.log_tail(), 5, "access log")


def test_what_is_never_stored_variants_and_invalidation(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"ttl": "60s"})
    for name, query, detail in [
        ("ns", "cc=no-store", "no-store"),
        ("pr", "cc=private,max-age=60", "private"),
        ("ck", "cc=max-age=60&cookie=1", "set-cookie"),
        ("vs", "cc=max-age=60&vary=*", "vary-star"),
        ("st", "status=500", "status"),
    ]:
        for _ in range(2):
            _, headers, _ = http(f"{edge.url}/api/users/cached/{name}?{query}")
            assert headers["cache-status"] == f"meshgate; fwd=miss; detail={detail}", name
        assert served(users, name) == 2, name
    # The route's ttl stands in for a missing max-age.
    http(f"{edge.url}/api/users/cached/ttl")
    assert http(f"{edge.url}/api/users/cached/ttl")[1]["cache-status"].startswith("meshgate; hit")

    # Vary: one entry per value of the header the app named.
    vary = f"{edge.url}/api/users/cached/v?cc=max-age=60&vary=X-Variant"
    one = http(vary, {"X-Variant": "one"})[2]
    two = http(vary, {"X-Variant": "two"})[2]
    assert one != two
    assert http(vary, {"X-Variant": "one"})[2] == one and http(vary, {"X-Variant": "two"})[2] == two
    assert served(users, "v") == 2

    # An unsafe method answered without an error invalidates the path's entries.
    req = urllib.request.Request(vary, data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Cache-Status"] == "meshgate; fwd=method"
    assert http(vary, {"X-Variant": "one"})[1]["cache-status"] == "meshgate; fwd=miss; stored"
    assert served(users, "v") == 3


def test_authenticated_callers_get_only_shareable_answers_and_their_own_variants(
    mesh: Mesh, tmp_path: Path
) -> None:
    routes = [{**USERS, "auth": "optional", "cache": {}}]
    am = start_auth_mesh(mesh, tmp_path, routes=routes)
    alice = {"Authorization": f"Bearer {am.token('alice')}"}
    bob = {"Authorization": f"Bearer {am.token('bob')}"}
    base = f"{am.edge.url}/api/users/cached"

    # Without public, an authenticated caller's answer is never stored.
    for who in (alice, alice, bob):
        assert http(f"{base}/p?cc=max-age=60", who)[1]["cache-status"] == (
            "meshgate; fwd=miss; detail=authorization"
        )
    assert served(am.users, "p") == 3
    # An anonymous caller's answer is stored, but never served to an authenticated one.
    http(f"{base}/a?cc=max-age=60")
    assert http(f"{base}/a?cc=max-age=60", alice)[1]["cache-status"] == (
        "meshgate; fwd=request; detail=authorization"
    )
    assert http(f"{base}/a?cc=max-age=60")[1]["cache-status"].startswith("meshgate; hit")
    # With public, it is shared, by everyone.
    http(f"{base}/q?cc=public,max-age=60", alice)
    for who in (bob, {}):
        assert http(f"{base}/q?cc=public,max-age=60", who)[1]["cache-status"].startswith(
            "meshgate; hit"
        )
    assert served(am.users, "q") == 1

    # Vary: X-User-Id keeps each caller's answer to them, by the identity the edge set.
    me = f"{base}/me?cc=public,max-age=60&vary=X-User-Id"

    def seen_user(headers: dict[str, str]) -> str | None:
        body = json.loads(http(me, headers)[2])
        return dict(body["headers"]).get("X-User-Id")

    assert seen_user(alice) == "alice"
    assert seen_user(bob) == "bob"
    assert seen_user(alice) == "alice" and seen_user(bob) == "bob"
    assert served(am.users, "me") == 2
    # A client claiming to be alice is anonymous to the edge: not alice's variant.
    assert seen_user({"X-User-Id": "alice"}) is None
    assert served(am.users, "me") == 3


def test_with_two_workers_a_purge_empties_every_workers_store(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {}, {"workers": 2})  # the harness's ports are fixed ones
    wait_until(lambda: len(descendants(edge.process.pid)) == 2, 10, "two workers")
    url = f"{edge.url}/api/users/cached/w?cc=max-age=60"

    def entries() -> list[int]:
        """Each worker's entries, in worker order, whichever worker the admin call reached."""
        view = admin(edge, "/cache?workers=all")
        assert [w["worker"] for w in view["workers"]] == [0, 1]
        return [w["answer"]["entries"] for w in view["workers"]]

    def fill() -> None:
        # urllib opens a connection per request: SO_REUSEPORT spreads them over both workers.
        wait_until(lambda: http(url)[0] == 200 and entries() == [1, 1], 20, "an entry in each")

    fill()
    pids = {w["answer"]["pid"] for w in admin(edge, "/cache?workers=all")["workers"]}
    assert pids == descendants(edge.process.pid)
    assert served(users, "w") == 2  # one miss per worker's store

    answer = admin(edge, "/cache/purge", {"prefix": "/api/users/cached/w"})
    assert answer["purged"] == 2
    assert [(w["worker"], w["answer"]["purged"]) for w in answer["workers"]] == [(0, 1), (1, 1)]
    assert entries() == [0, 0]
    fill()
    assert served(users, "w") == 4  # neither worker answered from what was purged

    # workers=this: the one worker that answers, as a single process would.
    answer = admin(edge, "/cache/purge?workers=this", {"all": True})
    assert answer["purged"] == 1 and answer["pid"] in pids
    assert sorted(entries()) == [0, 1]


def test_a_purge_by_tag_takes_what_named_it_and_clients_never_see_the_tags(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"stale_while_revalidate": "0s"})
    cached = f"{edge.url}/api/users/cached"
    tagged = {
        "u7": "user-7",
        "u7-teams": "user-7%20team-3",  # two tags, space-separated
        "u8": "user-8",
        "rev": "rev-1",
    }
    for name, tags in tagged.items():
        cc = "max-age=1&etag=r1" if name == "rev" else "max-age=60"
        status, headers, _ = http(f"{cached}/{name}?cc={cc}&tags={tags}")
        assert (status, headers["cache-status"]) == (200, "meshgate; fwd=miss; stored")
        assert "surrogate-key" not in headers  # the cache's, never the client's
        status, headers, _ = http(f"{cached}/{name}?cc={cc}&tags={tags}")
        assert headers["cache-status"].startswith("meshgate; hit")
        assert "surrogate-key" not in headers
    listed = {e["path"]: e["tags"] for e in admin(edge, f"/cache?route={ROUTE}")["listed"]}
    assert listed["/api/users/cached/u7-teams"] == ["user-7", "team-3"]
    assert admin(edge, "/cache")["tags"] == 4

    answer = admin(edge, "/cache/purge", {"tags": ["user-7"]})
    assert answer["purged"] == 2
    for name, tags in tagged.items():
        if name != "rev":
            http(f"{cached}/{name}?cc=max-age=60&tags={tags}")
    # The purged paths went back to the app; user-8's did not.
    assert [served(users, n) for n in ("u7", "u7-teams", "u8")] == [2, 2, 1]

    # A revalidated entry (the app's 304) is still found by its tag.
    time.sleep(1.5)
    status, headers, _ = http(f"{cached}/rev?cc=max-age=1&etag=r1&tags=rev-1")
    assert headers["cache-status"].startswith("meshgate; fwd=stale; fwd-status=304")
    assert "surrogate-key" not in headers
    assert admin(edge, "/cache/purge", {"tags": ["rev-1"]})["purged"] == 1

    # An answer naming more tags than an entry keeps is relayed, never stored.
    many = "%20".join(f"t{i}" for i in range(300))
    for _ in range(2):
        status, headers, _ = http(f"{cached}/many?cc=max-age=60&tags={many}")
        assert (status, headers["cache-status"]) == (200, "meshgate; fwd=miss; detail=tags")
        assert "surrogate-key" not in headers
    assert served(users, "many") == 2


def test_a_targeted_field_caches_here_what_cache_control_keeps_from_others(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"targeted_fields": ["Meshgate-Cache-Control"]})
    # Browsers must not keep it; the edge may, for a minute.
    url = f"{edge.url}/api/users/cached/t?cc=no-store&mcc=max-age=60"
    status, headers, body = http(url)
    assert (status, headers["cache-status"]) == (200, "meshgate; fwd=miss; stored")
    status, headers, again = http(url)
    assert (status, again) == (200, body)
    assert headers["cache-status"].startswith("meshgate; hit")
    # The client gets both fields as the service sent them.
    assert headers["cache-control"] == "no-store"
    assert headers["meshgate-cache-control"] == "max-age=60"
    assert served(users, "t") == 1
    # The other way round: Cache-Control allows it, the field for this cache does not.
    kept_out = f"{edge.url}/api/users/cached/u?cc=max-age=60&mcc=no-store"
    for _ in range(2):
        assert "stored" not in http(kept_out)[1]["cache-status"]
    assert served(users, "u") == 2
    # A field that is not a valid Structured Field is passed over: Cache-Control decides.
    invalid = f"{edge.url}/api/users/cached/v?cc=max-age=60&mcc=Max-Age=0"
    http(invalid)
    assert http(invalid)[1]["cache-status"].startswith("meshgate; hit")
    # A field not on the route's list changes nothing.
    other = f"{edge.url}/api/users/cached/w?cc=no-store&cdn=max-age=60"
    for _ in range(2):
        assert "stored" not in http(other)[1]["cache-status"]
    assert served(users, "w") == 2


def test_a_purge_on_one_edge_reaches_the_others_through_redis(
    mesh: Mesh, redis_server: RedisServer
) -> None:
    shared = {"cache": {"shared_purges": {"url": redis_server.url, "timeout": "500ms"}}}
    _, first = cached_mesh(mesh, {}, shared)
    second = mesh.edge([{**USERS, "cache": {}}], {**shared, "workers": 2})
    url = "/api/users/cached/p?cc=max-age=600&tags=user-7"
    http(f"{first.url}{url}")
    assert http(f"{first.url}{url}")[1]["cache-status"].startswith("meshgate; hit")

    def entries_on_the_second() -> list[int]:
        views = admin(second, "/cache?workers=all")["workers"]
        return [view["answer"]["entries"] for view in views]

    def stored_by_both_workers() -> bool:
        http(f"{second.url}{url}")  # each connection lands on either worker
        return entries_on_the_second() == [1, 1]

    wait_until(stored_by_both_workers, 10, "both workers of the second edge storing it")

    answer = admin(first, "/cache/purge", {"tags": ["user-7"]})
    assert answer["purged"] == 1
    assert answer["shared"]["published"] is True and answer["shared"]["id"]

    wait_until(lambda: entries_on_the_second() == [0, 0], 10, "the purge on the second edge")
    for view in admin(second, "/cache?workers=all")["workers"]:
        reader = view["answer"]["shared_purges"]
        assert reader["reading"] and reader["read_error"] is None
        assert reader["last_id"] == answer["shared"]["id"]  # each worker read it
    status, headers, _ = http(f"{second.url}{url}")
    assert (status, headers["cache-status"]) == (200, "meshgate; fwd=miss; stored")
    applied = sum(
        value
        for labels, value in metrics(second.admin).get("meshgate_cache_shared_purges_total", [])
        if labels["outcome"] == "applied"
    )
    assert applied == 2  # once by each worker of the second edge
    # The first edge read its own entry back and left it.
    assert http(f"{first.url}{url}")[1]["cache-status"] == "meshgate; fwd=miss; stored"
    assert http(f"{first.url}{url}")[1]["cache-status"].startswith("meshgate; hit")

    # Redis gone: the purge is carried out here, and the answer says it went no further.
    redis_server.stop()
    req = urllib.request.Request(
        f"http://127.0.0.1:{first.admin}/cache/purge", data=b'{"tags": ["user-7"]}'
    )
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("a purge Redis did not take was answered 200")
    except urllib.error.HTTPError as refused:
        assert refused.code == 503
        problem = json.loads(refused.read())
    assert problem["purged"] == 1
    assert problem["shared"]["published"] is False and "Redis" in problem["shared"]["error"]
    assert http(f"{first.url}{url}")[1]["cache-status"] == "meshgate; fwd=miss; stored"
    unpublished = [
        value
        for labels, value in metrics(first.admin).get("meshgate_cache_shared_purges_total", [])
        if labels["outcome"] == "unpublished"
    ]
    assert unpublished == [1.0]
    # The readers say they cannot read, rather than wait in silence.
    wait_until(
        lambda: not admin(first, "/cache")["shared_purges"]["reading"], 10, "the reader's error"
    )
    assert admin(first, "/cache")["shared_purges"]["read_error"]
    assert admin(first, "/cache")["shared_purges"]["stream"] == "meshgate:cache:purges"


def test_a_range_is_cut_from_the_stored_answer(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {})
    url = f"{edge.url}/api/users/cached/video?cc=max-age=60&bytes=100000"
    _, _, whole = http(url)
    assert len(whole) == 100_000
    status, headers, part = http(url, {"Range": "bytes=70000-70999"})
    assert (status, part, headers["content-range"]) == (
        206,
        whole[70_000:71_000],
        "bytes 70000-70999/100000",
    )
    assert headers["cache-status"].startswith("meshgate; hit")
    status, headers, body = http(url, {"Range": "bytes=100000-"})
    assert (status, headers["content-range"]) == (416, "bytes */100000")
    assert json.loads(body)["type"].endswith("/range-not-satisfiable")
    assert served(users, "video") == 1


def seen_by_app(body: bytes) -> dict[str, str]:
    """The request headers the app names in its JSON answer (``cached_answer``)."""
    return dict(json.loads(body)["headers"])


def test_a_head_miss_is_fetched_as_a_get_and_stored(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"max_body_size": "64KiB"})
    url = f"{edge.url}/api/users/cached/h?cc=max-age=60&bytes=5000&tags=t1"
    status, headers, body = http(url, method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", "5000")
    assert headers["cache-status"] == "meshgate; fwd=miss; stored"
    assert "surrogate-key" not in headers
    status, headers, whole = http(url)
    assert (status, len(whole)) == (200, 5000)
    assert headers["cache-status"].startswith("meshgate; hit")
    assert served(users, "h") == 1 and served(users, "h", "HEAD") == 0
    assert http(url, method="HEAD")[1]["cache-status"].startswith("meshgate; hit")

    # The app was asked for the whole of it: a GET without the HEAD's Range.
    echo = f"{edge.url}/api/users/cached/hj?cc=max-age=60"
    status, headers, body = http(echo, {"Range": "bytes=0-9"}, method="HEAD")
    assert (status, body, headers["cache-status"]) == (200, b"", "meshgate; fwd=miss; stored")
    status, _, whole = http(echo)
    assert json.loads(whole)["method"] == "GET" and "Range" not in seen_by_app(whole)
    assert headers["content-length"] == str(len(whole))
    assert served(users, "hj") == 1 and served(users, "hj", "HEAD") == 0

    # An answer not stored gets its head alone, its Content-Length the whole body's;
    # its body is never sent (the upstream connection is closed instead), every time.
    never = f"{edge.url}/api/users/cached/hn?cc=no-store&bytes=300000"
    for _ in range(2):
        status, headers, body = http(never, method="HEAD")
        assert (status, body, headers["content-length"]) == (200, b"", "300000")
        assert headers["cache-status"] == "meshgate; fwd=miss; detail=no-store"
    assert served(users, "hn") == 2 and served(users, "hn", "HEAD") == 0
    # A streamed body past max_body_size: headers only, dropped, not stored.
    big = f"{edge.url}/api/users/cached/hb?cc=max-age=60&bytes=300000&stream=1"
    status, headers, body = http(big, method="HEAD")
    assert (status, body, headers["cache-status"]) == (
        200,
        b"",
        "meshgate; fwd=miss; detail=too-large",
    )
    assert "content-length" not in headers
    status, headers, body = http(big)
    assert (status, len(body), headers["cache-status"]) == (
        200,
        300_000,
        "meshgate; fwd=miss; stored",
    )
    assert served(users, "hb") == 2
    requests = admin(edge, "/cache")["routes"][ROUTE]["requests"]
    assert requests["dropped:too-large"] == 2 and requests["uncacheable"] == 3
    assert http(f"{edge.url}/api/users/cached/after?cc=max-age=60")[0] == 200  # edge fine


def test_with_convert_head_off_a_head_goes_on_as_it_is(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"convert_head": False})
    url = f"{edge.url}/api/users/cached/hh?cc=max-age=60"
    for _ in range(2):
        status, headers, body = http(url, method="HEAD")
        assert (status, body) == (200, b"")
        assert headers["cache-status"] == "meshgate; fwd=miss; detail=head"
    assert served(users, "hh", "HEAD") == 2 and served(users, "hh") == 0
    assert http(url)[1]["cache-status"] == "meshgate; fwd=miss; stored"
    assert http(url, method="HEAD")[1]["cache-status"].startswith("meshgate; hit")
    assert served(users, "hh", "HEAD") == 2 and served(users, "hh") == 1
    [route] = [r for r in admin(edge, "/routes")["routes"] if r["prefix"] == "/api/users"]
    assert (route["cache"]["convert_head"], route["cache"]["fill_on_range"]) == (False, True)


def test_a_range_miss_fetches_the_whole_and_cuts_the_range_from_it(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"max_body_size": "64KiB"})
    url = f"{edge.url}/api/users/cached/r?cc=max-age=60&etag=r1"
    status, headers, part = http(url, {"Range": "bytes=0-9", "If-Range": '"r1"'})
    assert (status, headers["cache-status"]) == (206, "meshgate; fwd=miss; stored")
    status, headers, whole = http(url)
    assert (status, part) == (200, whole[:10])
    assert headers["cache-status"].startswith("meshgate; hit")
    seen = seen_by_app(whole)
    assert "Range" not in seen and "If-Range" not in seen  # the app was asked for the whole
    status, headers, last = http(url, {"Range": "bytes=-5"})
    assert (status, last, headers["content-range"]) == (
        206,
        whole[-5:],
        f"bytes {len(whole) - 5}-{len(whole) - 1}/{len(whole)}",
    )
    assert headers["cache-status"].startswith("meshgate; hit")
    assert served(users, "r") == 1

    # Bytes, and a range past the end: a 416 from the entry the miss stored.
    video = f"{edge.url}/api/users/cached/video?cc=max-age=60&bytes=40000"
    status, headers, part = http(video, {"Range": "bytes=30000-30999"})
    assert (status, headers["content-range"]) == (206, "bytes 30000-30999/40000")
    assert part == (bytes(range(256)) * 160)[30_000:31_000]
    status, headers, _ = http(video, {"Range": "bytes=40000-"})
    assert (status, headers["content-range"]) == (416, "bytes */40000")
    assert headers["cache-status"].startswith("meshgate; hit")
    # An If-Range the stored answer does not meet gets the whole of it.
    status, _, body = http(video, {"Range": "bytes=0-9", "If-Range": '"other"'})
    assert (status, len(body)) == (200, 40_000)
    assert served(users, "video") == 1

    # Not stored: the app's whole answer, a 200, as a server may answer a Range.
    for name, query, detail in [
        ("rn", "cc=no-store&bytes=1000", "no-store"),
        ("rb", "cc=max-age=60&bytes=300000&stream=1", "too-large"),  # read on, relayed
    ]:
        status, headers, body = http(
            f"{edge.url}/api/users/cached/{name}?{query}", {"Range": "bytes=0-9"}
        )
        assert (status, headers["cache-status"]) == (200, f"meshgate; fwd=miss; detail={detail}")
        size = int(query.split("bytes=")[1].split("&")[0])
        assert body == (bytes(range(256)) * (size // 256 + 1))[:size], name
        assert "content-range" not in headers
    assert served(users, "rn") == 1 and served(users, "rb") == 1


def test_a_range_is_cut_only_from_an_entry_the_request_may_use(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {})
    cookie = {"Cookie": "session=1", "Range": "bytes=0-9"}  # a Cookie is a credential
    mine = f"{edge.url}/api/users/cached/a?cc=max-age=60"
    _, _, anonymous = http(mine)
    status, headers, body = http(mine, cookie)
    assert (status, headers["cache-status"]) == (200, "meshgate; fwd=request; detail=authorization")
    assert seen_by_app(body)["Cookie"] == "session=1" and "Range" not in seen_by_app(body)
    assert http(mine)[2] == anonymous  # the anonymous entry is still there, untouched
    shared = f"{edge.url}/api/users/cached/p?cc=public,max-age=60"
    _, _, whole = http(shared)
    status, headers, part = http(shared, cookie)
    assert (status, part) == (206, whole[:10])
    assert headers["cache-status"].startswith("meshgate; hit")
    assert served(users, "a") == 2 and served(users, "p") == 1


def test_with_fill_on_range_off_a_range_miss_passes_by(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {"fill_on_range": False})
    url = f"{edge.url}/api/users/cached/r?cc=max-age=60"
    for _ in range(2):
        status, headers, body = http(url, {"Range": "bytes=0-9"})
        assert headers["cache-status"] == "meshgate; fwd=bypass"
        assert seen_by_app(body)["Range"] == "bytes=0-9"  # sent on with its Range
    assert served(users, "r") == 2
    _, headers, whole = http(url)
    assert headers["cache-status"] == "meshgate; fwd=miss; stored"
    status, headers, part = http(url, {"Range": "bytes=0-9"})  # a fresh 200 still answers
    assert (status, part, headers["cache-status"][:13]) == (206, whole[:10], "meshgate; hit")
    assert served(users, "r") == 3


def test_stale_if_error_large_bodies_and_purges(mesh: Mesh) -> None:
    users, sidecar, edge = cached_mesh_with_sidecar(
        mesh, {"stale_if_error": "5m", "max_body_size": "64KiB"}
    )

    # A body over max_body_size reaches the client whole, streamed, and is not kept.
    big = f"{edge.url}/api/users/cached/big?cc=max-age=60&bytes=300000&stream=1"
    for _ in range(2):
        status, headers, body = http(big)
        assert (status, len(body)) == (200, 300_000)
        assert headers.get("transfer-encoding") == "chunked"
    assert served(users, "big") == 2
    assert admin(edge, "/cache")["routes"][ROUTE]["requests"]["dropped:too-large"] == 2

    # Purges, by path prefix and by route.
    for name in ("p1", "p1/x", "p2"):
        http(f"{edge.url}/api/users/cached/{name}?cc=max-age=60")
    assert admin(edge, "/cache/purge", {"prefix": "/api/users/cached/p1"})["purged"] == 2
    assert http(f"{edge.url}/api/users/cached/p1?cc=max-age=60")[1]["cache-status"] == (
        "meshgate; fwd=miss; stored"
    )
    assert http(f"{edge.url}/api/users/cached/p2?cc=max-age=60")[1]["cache-status"].startswith(
        "meshgate; hit"
    )
    assert admin(edge, "/cache/purge", {"route": ROUTE})["purged"] == 2
    assert admin(edge, "/cache")["entries"] == 0

    # The app fails, then is gone: the stale answer is served within stale_if_error.
    url = f"{edge.url}/api/users/cached/s?cc=max-age=2"
    _, _, body = http(url)
    time.sleep(3)
    users.faults(error_rate=1.0, error_status=500)
    status, headers, stale = http(url)
    assert (status, stale) == (200, body)
    assert headers["cache-status"].startswith("meshgate; fwd=stale; fwd-status=500; ttl=-")
    assert headers["cache-status"].endswith("detail=stale-if-error")
    users.process.stop()  # its sidecar answers 502, until Consul finds its check failing
    status, headers, stale = http(url)
    assert (status, stale) == (200, body)
    assert headers["cache-status"].endswith("detail=stale-if-error")
    never = f"{edge.url}/api/users/cached/never?cc=max-age=60"
    assert http(never)[0] in (502, 503)  # never stored: nothing to fall back on
    sidecar.process.stop()  # deregistered: the edge has no healthy instance (503)
    wait_until(lambda: http(never)[0] == 503, 15, "no healthy instance of users")
    status, headers, stale = http(url)
    assert (status, stale) == (200, body)
    assert headers["cache-status"].startswith("meshgate; fwd=stale; ttl=-")  # no service status
    assert headers["cache-status"].endswith("detail=stale-if-error")
    assert results(edge)["stale_if_error"] == 3.0


def test_concurrent_misses_make_one_request_to_the_app(mesh: Mesh) -> None:
    users, edge = cached_mesh(mesh, {})
    url = f"{edge.url}/api/users/cached/k?cc=max-age=60&ms=500"
    answers: list[tuple[int, dict[str, str], bytes]] = []

    def one() -> None:
        answers.append(http(url))

    threads = [threading.Thread(target=one) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert served(users, "k") == 1
    assert {(status, body) for status, _, body in answers} == {(200, answers[0][2])}
    kinds = Counter(h["cache-status"].split("; ttl")[0] for _, h, _ in answers)
    assert kinds == {"meshgate; fwd=miss; stored": 1, "meshgate; fwd=miss; collapsed": 9}
    assert results(edge) == {"miss": 1.0, "collapsed": 9.0}


def test_a_reload_turns_the_cache_on_and_off(mesh: Mesh) -> None:
    users = mesh.app("users", "users-1")
    mesh.sidecar(users, "users-1")
    edge = mesh.edge([USERS])
    url = f"{edge.url}/api/users/cached/r?cc=max-age=60"
    for _ in range(2):
        assert "cache-status" not in http(url)[1]
    assert served(users, "r") == 2

    rewrite(edge, routes=[{**USERS, "cache": {"stale_if_error": "1m"}}])
    assert hang_up(edge, "applied")["last_reload"]["applied"] == ["routes"]
    [route] = admin(edge, "/routes")["routes"]
    assert route["cache"]["stale_if_error"] == 60.0
    assert http(url)[1]["cache-status"] == "meshgate; fwd=miss; stored"
    assert http(url)[1]["cache-status"].startswith("meshgate; hit")
    assert served(users, "r") == 3

    rewrite(edge, routes=[USERS], cache={"max_entries": 5})
    view = hang_up(edge, "applied", count=2)
    assert set(view["last_reload"]["applied"]) == {"routes", "cache.max_entries"}
    assert "cache-status" not in http(url)[1]
    assert served(users, "r") == 4
    assert admin(edge, "/cache")["entries"] == 0  # the route's entries went with its cache
