"""The stored responses of one edge process, bounded, least recently used out first (pure).

Entries are found by their primary key (:mod:`edge.cache.key`), then among that
key's variants by the request's values of the headers each varies on (newest
first, at most :data:`MAX_VARIANTS` per key). The store keeps the total of its
entries' sizes within ``max_bytes`` and their number within ``max_entries``:
storing past either evicts the least recently used entries (a hit makes an
entry the most recently used). An entry's size counts its body, its headers,
the gzipped copy of its body once one is kept, and :data:`ENTRY_OVERHEAD`.

No I/O and no clock: the caller decides freshness (:mod:`edge.cache.freshness`).
One event loop uses a store; it is not thread-safe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from multidict import CIMultiDict

from edge.cache.freshness import Timing
from edge.cache.key import PrimaryKey
from edge.cache.vary import Lookup, Variant, matches

MAX_VARIANTS = 16
"""Variants kept per primary key (a ``Vary`` on a header with many values, such as
``User-Agent``, would otherwise fill the store with one resource); the oldest goes."""
ENTRY_OVERHEAD = 512
"""Bytes counted per entry beyond its body and headers: the objects holding them."""
_HEADER_OVERHEAD = 64
"""Bytes counted per stored header line beyond its name and value."""
_TAG_OVERHEAD = 64
"""Bytes counted per tag beyond its own: its place in the entry and in the tag index."""


@dataclass(slots=True, eq=False)
class Entry:
    """One stored response and what the cache knows about it."""

    key: PrimaryKey
    route: str
    host: str
    """The request's ``Host``, lower-cased (for invalidations by URI)."""
    path: str
    """The request's normalised path (for purges by prefix and invalidations)."""
    status: int
    reason: str | None
    headers: CIMultiDict[str]
    """End-to-end headers as stored: no ``Content-Length``, ``Age`` or the edge's own;
    never changed in place (a revalidation stores a new entry)."""
    body: bytes
    variant: Variant
    timing: Timing
    shared: bool
    """May serve requests with credentials (see :mod:`edge.cache.storable`)."""
    tags: tuple[str, ...] = ()
    """The tags its answer named (:mod:`edge.cache.tags`), for purges by tag."""
    hits: int = 0
    gzipped: tuple[int, bytes] | None = None
    """The body gzipped at a zlib level, once a client took it so: (level, bytes)."""
    size: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.size:
            self.size = measure(self.headers, self.body, self.tags)

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("Last-Modified")

    @property
    def validated(self) -> bool:
        """It has a validator to revalidate it by."""
        return "ETag" in self.headers or "Last-Modified" in self.headers


def measure(headers: CIMultiDict[str], body: bytes, tags: tuple[str, ...] = ()) -> int:
    """The size counted for an entry of these headers, body and tags."""
    lines = sum(len(k) + len(v) + _HEADER_OVERHEAD for k, v in headers.items())
    labels = sum(len(tag) + _TAG_OVERHEAD for tag in tags)
    return ENTRY_OVERHEAD + lines + labels + len(body)


class StoreObserver(Protocol):
    """Told of the store's totals when they change, and of evictions (metrics)."""

    def changed(self, size: int, entries: int) -> None: ...

    def evicted(self, count: int) -> None: ...


class _Quiet:
    def changed(self, size: int, entries: int) -> None:
        pass

    def evicted(self, count: int) -> None:
        pass


class CacheStore:
    """See the module docstring."""

    def __init__(
        self, max_bytes: int, max_entries: int, observer: StoreObserver | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._observer = observer or _Quiet()
        self._lru: OrderedDict[Entry, None] = OrderedDict()
        """Every entry, least recently used first."""
        self._variants: dict[PrimaryKey, list[Entry]] = {}
        """A key's entries, newest first."""
        self._by_uri: dict[tuple[str, str], list[Entry]] = {}
        """Entries by (host, path), for invalidations."""
        self._by_tag: dict[str, dict[Entry, None]] = {}
        """Entries by tag, for purges by tag (insertion-ordered sets)."""
        self._routes: dict[str, list[int]] = {}
        """Per route: [entries, bytes]."""
        self.size = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, entry: Entry) -> bool:
        return entry in self._lru

    def __iter__(self) -> Iterator[Entry]:
        """Entries, most recently used first."""
        return reversed(list(self._lru))

    def find(self, key: PrimaryKey, lookup: Lookup) -> Entry | None:
        """The newest entry of ``key`` whose variant the request (``lookup``) matches, made
        the most recently used; None when there is none."""
        variants = self._variants.get(key)
        if variants is None:
            return None
        for entry in variants:
            if not entry.variant or matches(entry.variant, lookup):
                self._lru.move_to_end(entry)
                return entry
        return None

    def known(self, key: PrimaryKey) -> bool:
        """Whether any entry of ``key`` is stored (for any variant)."""
        return key in self._variants

    def put(self, entry: Entry) -> bool:
        """Store ``entry`` as the most recently used, in place of the entry of the same key
        and variant if any, evicting others to stay within bounds; False (and nothing
        stored) when it alone is larger than ``max_bytes``."""
        if entry.size > self.max_bytes:
            return False
        for old in self._variants.get(entry.key, ()):
            if old.variant == entry.variant:
                self._unlink(old)  # drops the key's list when it was the only one
                break
        variants = self._variants.setdefault(entry.key, [])
        variants.insert(0, entry)
        if len(variants) > MAX_VARIANTS:
            self._unlink(variants[-1])
            self._count_evictions(1)
        self._lru[entry] = None
        self._by_uri.setdefault((entry.host, entry.path), []).append(entry)
        for tag in entry.tags:
            self._by_tag.setdefault(tag, {})[entry] = None
        self._account(entry.route, 1, entry.size)
        self._evict()
        self._changed()
        return True

    def remove(self, entry: Entry) -> None:
        """Take ``entry`` out (nothing when it is no longer stored)."""
        if entry in self._lru:
            self._unlink(entry)
            self._changed()

    def keep_gzipped(self, entry: Entry, level: int, data: bytes) -> None:
        """Keep ``data``, ``entry``'s body gzipped at ``level``, with it (counted in its
        size; others are evicted if the store grows past its bounds)."""
        if entry not in self._lru:
            return
        old = len(entry.gzipped[1]) if entry.gzipped is not None else 0
        entry.gzipped = (level, data)
        grown = len(data) - old
        entry.size += grown
        self._account(entry.route, 0, grown)
        self._evict()
        self._changed()

    def purge(
        self,
        route: str | None = None,
        prefix: str | None = None,
        tags: Collection[str] | None = None,
    ) -> int:
        """Remove the entries of ``route`` (None: any) whose path is ``prefix`` or under it
        on a segment boundary (None: any) and that carry any of ``tags`` (None: whatever
        their tags); how many went."""
        candidates: Iterable[Entry] = self._lru if tags is None else self._tagged(tags)
        doomed = [
            e
            for e in candidates
            if (route is None or e.route == route) and (prefix is None or _under(e.path, prefix))
        ]
        for entry in doomed:
            self._unlink(entry)
        if doomed:
            self._changed()
        return len(doomed)

    def invalidate(self, host: str, path: str) -> int:
        """Remove every entry stored for ``host`` (lower-cased) and ``path``, any query and
        variant, whatever route (RFC 9111 §4.4); how many went."""
        doomed = list(self._by_uri.get((host, path), ()))
        for entry in doomed:
            self._unlink(entry)
        if doomed:
            self._changed()
        return len(doomed)

    def resize(self, max_bytes: int, max_entries: int) -> None:
        """New bounds; entries are evicted at once to fit them."""
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._evict()
        self._changed()

    def tag_count(self) -> int:
        """How many distinct tags the stored entries carry."""
        return len(self._by_tag)

    def route_totals(self) -> dict[str, tuple[int, int]]:
        """Per route: (entries, bytes)."""
        return {route: (n, size) for route, (n, size) in self._routes.items()}

    # -- internals --------------------------------------------------------------

    def _tagged(self, tags: Collection[str]) -> list[Entry]:
        """The entries carrying any of ``tags``, each once."""
        found: dict[Entry, None] = {}
        for tag in tags:
            found.update(self._by_tag.get(tag, {}))
        return list(found)

    def _evict(self) -> None:
        evicted = 0
        while self._lru and (self.size > self.max_bytes or len(self._lru) > self.max_entries):
            oldest = next(iter(self._lru))
            self._unlink(oldest)
            evicted += 1
        self._count_evictions(evicted)

    def _count_evictions(self, count: int) -> None:
        if count:
            self.evictions += count
            self._observer.evicted(count)

    def _unlink(self, entry: Entry) -> None:
        del self._lru[entry]
        variants = self._variants[entry.key]
        variants.remove(entry)
        if not variants:
            del self._variants[entry.key]
        uri = (entry.host, entry.path)
        same = self._by_uri[uri]
        same.remove(entry)
        if not same:
            del self._by_uri[uri]
        for tag in entry.tags:
            tagged = self._by_tag[tag]
            del tagged[entry]
            if not tagged:
                del self._by_tag[tag]
        self._account(entry.route, -1, -entry.size)

    def _account(self, route: str, entries: int, size: int) -> None:
        self.size += size
        totals = self._routes.setdefault(route, [0, 0])
        totals[0] += entries
        totals[1] += size
        if not totals[0]:
            del self._routes[route]

    def _changed(self) -> None:
        self._observer.changed(self.size, len(self._lru))


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it on a segment boundary (``/`` holds every path)."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + "/")
