"""The bounded LRU store: lookups by key and variant, eviction, purges, invalidation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edge.cache.store import ENTRY_OVERHEAD, MAX_VARIANTS, CacheStore, Entry, measure
from edge.cache.vary import Variant
from tests.edge.cache.entries import make_entry


@dataclass
class Observer:
    totals: list[tuple[int, int]] = field(default_factory=list)
    evictions: list[int] = field(default_factory=list)

    def changed(self, size: int, entries: int) -> None:
        self.totals.append((size, entries))

    def evicted(self, count: int) -> None:
        self.evictions.append(count)


def entry(
    path: str = "/a",
    *,
    route: str = "r",
    host: str = "h",
    body: bytes = b"x" * 100,
    variant: Variant = (),
    query: str = "",
    tags: tuple[str, ...] = (),
) -> Entry:
    return make_entry(
        path,
        route=route,
        host=host,
        query=query,
        headers={"Content-Type": "text/plain"},
        body=body,
        variant=variant,
        tags=tags,
    )


def no_headers(_: str) -> str | None:
    return None


def test_an_entry_is_sized_by_body_headers_and_overhead() -> None:
    e = entry(body=b"x" * 100)
    header = 64 + len("Content-Type") + len("text/plain")
    assert e.size == measure(e.headers, e.body) == ENTRY_OVERHEAD + 100 + header


def test_put_find_and_the_totals() -> None:
    observer = Observer()
    store = CacheStore(10_000, 10, observer)
    a, b = entry("/a"), entry("/b", route="s")
    assert store.put(a) and store.put(b)
    assert store.find(a.key, no_headers) is a
    assert store.find(("r", "h", "/missing", ""), no_headers) is None
    assert (len(store), store.size) == (2, a.size + b.size)
    assert store.route_totals() == {"r": (1, a.size), "s": (1, b.size)}
    assert observer.totals[-1] == (a.size + b.size, 2)


def test_the_least_recently_used_go_first_past_max_entries() -> None:
    observer = Observer()
    store = CacheStore(10**9, 3, observer)
    a, b, c, d = (entry(p) for p in ("/a", "/b", "/c", "/d"))
    for e in (a, b, c):
        store.put(e)
    store.find(a.key, no_headers)  # a is now the most recently used
    store.put(d)
    assert b not in store and {a, c, d} <= set(store)
    assert list(store) == [d, a, c]  # most recently used first
    assert store.evictions == 1 and observer.evictions == [1]


def test_the_least_recently_used_go_first_past_max_bytes() -> None:
    one = entry("/a").size
    store = CacheStore(3 * one, 100)
    entries = [entry(f"/{i}") for i in range(5)]
    for e in entries:
        store.put(e)
    assert list(store) == entries[:1:-1]  # the last three
    assert store.size == 3 * one and store.evictions == 2


def test_an_entry_larger_than_the_store_is_refused() -> None:
    store = CacheStore(1000, 10)
    assert not store.put(entry(body=b"x" * 1000))
    assert len(store) == 0 and store.size == 0


def test_variants_of_a_key_are_chosen_by_the_request_values() -> None:
    store = CacheStore(10**9, 100)
    en = entry(variant=(("accept-language", "en"),))
    fr = entry(variant=(("accept-language", "fr"),))
    store.put(en)
    store.put(fr)
    assert store.find(en.key, {"accept-language": "en"}.get) is en
    assert store.find(en.key, {"accept-language": "fr"}.get) is fr
    assert store.find(en.key, {"accept-language": "de"}.get) is None
    assert store.known(en.key)
    # The same variant again replaces it.
    en2 = entry(variant=(("accept-language", "en"),))
    store.put(en2)
    assert len(store) == 2 and en not in store
    assert store.find(en.key, {"accept-language": "en"}.get) is en2


def test_a_key_keeps_at_most_max_variants_the_oldest_go() -> None:
    store = CacheStore(10**9, 1000)
    made = [entry(variant=(("x", str(i)),)) for i in range(MAX_VARIANTS + 2)]
    for e in made:
        store.put(e)
    assert len(store) == MAX_VARIANTS
    assert made[0] not in store and made[1] not in store and made[-1] in store
    assert store.evictions == 2


def test_remove_and_the_totals_going_back_to_zero() -> None:
    store = CacheStore(10**9, 100)
    a = entry()
    store.put(a)
    store.remove(a)
    store.remove(a)  # no longer stored: nothing
    assert (len(store), store.size, store.route_totals()) == (0, 0, {})
    assert not store.known(a.key)


def test_purge_by_route_and_path_prefix_on_segment_boundaries() -> None:
    store = CacheStore(10**9, 100)
    for path, route in [("/u/7", "r"), ("/u/7/x", "r"), ("/u/70", "r"), ("/v", "r"), ("/u/7", "s")]:
        store.put(entry(path, route=route))
    assert store.purge(route="r", prefix="/u/7") == 2
    assert {e.path for e in store if e.route == "r"} == {"/u/70", "/v"}
    assert store.purge(prefix="/u/7/") == 1  # the other route's /u/7 (trailing slash alike)
    assert store.purge(route="r") == 2
    assert store.purge() == 0 and len(store) == 0


def test_tags_count_in_an_entrys_size() -> None:
    plain, tagged = entry(), entry(tags=("user-7", "team-3"))
    assert tagged.size == plain.size + len("user-7") + len("team-3") + 2 * 64
    assert tagged.size == measure(tagged.headers, tagged.body, tagged.tags)


def test_purge_by_tag_takes_every_entry_naming_any_of_them() -> None:
    store = CacheStore(10**9, 100)
    a = entry("/users/7", tags=("user-7",))
    b = entry("/teams/3", tags=("team-3", "user-7"))
    c = entry("/teams/3", route="s", tags=("team-3",))
    d = entry("/other")
    for e in (a, b, c, d):
        store.put(e)
    assert store.tag_count() == 2
    assert store.purge(tags=["nobody"]) == 0
    assert store.purge(route="s", tags=["user-7"]) == 0  # s's entry does not name user-7
    assert store.purge(tags=["user-7", "team-3"]) == 3  # b named both: counted once
    assert list(store) == [d] and store.tag_count() == 0


def test_purge_by_tag_with_route_and_prefix_takes_what_meets_each() -> None:
    store = CacheStore(10**9, 100)
    for path, route in [("/u/7", "r"), ("/u/7/x", "s"), ("/v", "r")]:
        store.put(entry(path, route=route, tags=("t",)))
    assert store.purge(route="r", prefix="/u", tags=["t"]) == 1
    assert {(e.path, e.route) for e in store} == {("/u/7/x", "s"), ("/v", "r")}
    assert store.tag_count() == 1


def test_a_replaced_or_evicted_entry_leaves_the_tag_index() -> None:
    store = CacheStore(10**9, 2)
    store.put(entry("/a", tags=("old",)))
    store.put(entry("/a", tags=("new",)))  # same key and variant: replaces
    assert store.tag_count() == 1 and store.purge(tags=["old"]) == 0
    store.put(entry("/b", tags=("b",)))
    store.put(entry("/c", tags=("c",)))  # past max_entries: /a goes
    assert store.tag_count() == 2 and store.purge(tags=["new"]) == 0
    store.invalidate("h", "/b")
    assert store.tag_count() == 1


def test_purge_everything_under_the_root() -> None:
    store = CacheStore(10**9, 100)
    for p in ("/a", "/b/c"):
        store.put(entry(p))
    assert store.purge(prefix="/") == 2


def test_invalidate_takes_every_query_and_variant_of_a_uri() -> None:
    store = CacheStore(10**9, 100)
    kept = entry("/a", host="other")
    store.put(kept)
    for query, value in (("", "en"), ("", "fr"), ("x=1", "en")):
        store.put(entry("/a", query=query, variant=(("l", value),)))
    assert store.invalidate("h", "/a") == 3
    assert list(store) == [kept]
    assert store.invalidate("h", "/a") == 0


def test_a_gzipped_copy_counts_and_may_evict_others() -> None:
    a, b = entry("/a"), entry("/b")
    store = CacheStore(a.size + b.size + 50, 100)
    store.put(a)
    store.put(b)
    store.keep_gzipped(b, 6, b"z" * 40)
    assert b.gzipped == (6, b"z" * 40) and store.size == a.size + b.size
    assert b.size == entry("/b").size + 40
    store.keep_gzipped(b, 9, b"z" * 100)  # replaces the first copy: +60 more, past the bound
    assert a not in store and b in store and store.size == b.size
    store.remove(b)
    store.keep_gzipped(b, 6, b"z")  # not stored any more: nothing
    assert store.size == 0


def test_resize_evicts_at_once() -> None:
    store = CacheStore(10**9, 100)
    made = [entry(f"/{i}") for i in range(4)]
    for e in made:
        store.put(e)
    store.resize(10**9, 1)
    assert list(store) == [made[-1]]
    assert (store.max_bytes, store.max_entries) == (10**9, 1)


@pytest.mark.parametrize("count", [1, 50])
def test_accounting_stays_exact_through_churn(count: int) -> None:
    store = CacheStore(20 * entry().size, 15)
    for i in range(500):
        store.put(entry(f"/{i % (count + 7)}", variant=(("v", str(i % 3)),), tags=(str(i % 4),)))
        if i % 11 == 0:
            store.purge(prefix=f"/{i % 5}")
        if i % 17 == 0:
            store.purge(tags=[str(i % 4)])
    assert store.size == sum(e.size for e in store)
    assert store.tag_count() == len({tag for e in store for tag in e.tags})
    assert sum(n for n, _ in store.route_totals().values()) == len(store) <= 15
