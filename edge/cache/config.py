"""The cache's configuration: the edge-wide store (``cache``) and a route's ``cache`` key."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from edge.cache.key import KeySpec, QueryRule
from edge.cache.policy import CachePolicy
from edge.cache.tags import DEFAULT_HEADER as DEFAULT_TAG_HEADER
from edge.cache.targeted import DEFAULT_FIELDS as DEFAULT_TARGETED_FIELDS
from mesh.config.types import (
    ByteSize,
    Duration,
    Frozen,
    HeaderName,
    PositiveDuration,
    RedisUrl,
)

CACHED_METHODS = ("GET", "HEAD")


class SharedPurgesConfig(Frozen):
    """``cache.shared_purges``: purges shared with every edge reading the same Redis
    stream (:mod:`edge.cache.shared_purges`). Read at start; a change waits for a
    restart."""

    url: RedisUrl = "redis://127.0.0.1:6379/0"
    """``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS)."""
    stream: str = Field(default="meshgate:cache:purges", min_length=1)
    """The stream's key: the same on every edge that shares purges."""
    max_length: int = Field(default=10_000, ge=1)
    """About how many purges the stream keeps (``XADD MAXLEN ~``): how far back an edge
    cut off from Redis can catch up."""
    timeout: PositiveDuration = 1.0
    """Longest appending a purge may take before the admin answer says it was not
    shared."""


class CacheStoreConfig(Frozen):
    """``cache:`` at the top of the edge's file: the store every cached route shares, one
    per edge process (each of ``--workers N`` has its own)."""

    max_bytes: ByteSize = 64 * 1024 * 1024
    """Most bytes of stored responses (bodies, headers and bookkeeping) per process; past
    it the least recently used go."""
    max_entries: int = Field(default=10_000, ge=1)
    """Most stored responses per process; past it the least recently used go."""
    shared_purges: SharedPurgesConfig | None = None
    """Share purges with other edges through Redis; null (default): a purge is this
    edge's alone."""


class CacheKeyConfig(Frozen):
    """What besides the route, ``Host`` and path tells a route's stored answers apart."""

    headers: tuple[HeaderName, ...] = ()
    """Request headers whose values join the key, as the edge sends them on (identity
    headers the edge sets included), for services that vary by them without saying
    ``Vary``."""
    query: str | tuple[str, ...] = "all"
    """``all``: the query as sent; ``none``: ignored; a list of names: only those
    parameters (in sorted order)."""

    @field_validator("query", mode="before")
    @classmethod
    def _rule(cls, value: object) -> object:
        if isinstance(value, str):
            if value not in ("all", "none"):
                raise ValueError(f"{value!r}: all, none, or a list of parameter names")
            return value
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("an empty list keeps no parameter: write `none`")
            for name in value:
                if not isinstance(name, str) or not name:
                    raise ValueError(f"{name!r} is not a query parameter name")
            return tuple(value)
        raise ValueError("all, none, or a list of parameter names")

    def spec(self) -> KeySpec:
        query = self.query
        rule: QueryRule = ("all" if query == "all" else "none") if isinstance(query, str) else query
        return KeySpec(tuple(h.lower() for h in self.headers), rule)


class RouteCacheConfig(Frozen):
    """``cache: {ttl: 30s}`` on a route: store its answers at the edge (see :mod:`edge.cache`)."""

    ttl: PositiveDuration | None = None
    """Freshness of an answer that gives none itself (``max-age``, ``s-maxage``,
    ``Expires``); null: such an answer is not stored."""
    max_body_size: ByteSize = 1024 * 1024
    """Largest body stored; a larger one is relayed as it comes, unstored."""
    methods: tuple[str, ...] = CACHED_METHODS
    """Methods answered from the cache: GET, and HEAD from GET's entries."""
    convert_head: bool = True
    """A HEAD that finds nothing fresh goes to the service as a GET, so that its answer
    can be stored (nginx's ``proxy_cache_convert_head``); its client gets the head alone.
    false: sent on as a HEAD, its answer not stored. Only with HEAD in ``methods``."""
    fill_on_range: bool = True
    """A GET with a ``Range`` that no fresh stored 200 answers goes on whole (without
    ``Range`` and ``If-Range``, as nginx and Varnish send it), its answer is stored as a
    GET's, and the range is cut from it; an answer not stored goes to the client whole
    (a 200). false: such a request passes the cache by with its ``Range``, and its
    answer (a part) is not stored."""
    key: CacheKeyConfig = CacheKeyConfig()
    stale_while_revalidate: Duration = 0.0
    """Past freshness, how long an answer is served while revalidated in the background
    (unless the answer's own ``Cache-Control`` says otherwise); 0: never."""
    stale_if_error: Duration = 0.0
    """Past freshness, how long an answer is served when the service fails (unless the
    answer's own ``Cache-Control`` says otherwise); 0: never."""
    lock: bool = True
    """Concurrent misses of one key wait for a single fetch to the service."""
    lock_timeout: PositiveDuration = 5.0
    """Longest a miss waits for another's fetch before fetching for itself."""
    tag_header: HeaderName | None = DEFAULT_TAG_HEADER
    """The response header naming an answer's tags, by which ``POST /cache/purge
    {"tags": [...]}`` removes entries (:mod:`edge.cache.tags`); taken out of every
    answer of the route; null: answers are not tagged and the header goes through."""
    targeted_fields: tuple[HeaderName, ...] = DEFAULT_TARGETED_FIELDS
    """Targeted cache-control fields (RFC 9213) this cache obeys, most specific first:
    the first an answer carries with a valid value sets its caching policy, and its
    ``Cache-Control`` and ``Expires`` are then ignored (:mod:`edge.cache.targeted`);
    ``[]``: ``Cache-Control`` alone. Add ``CDN-Cache-Control`` to obey what services
    tell CDNs."""

    @field_validator("targeted_fields")
    @classmethod
    def _targeted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for name in value:
            lower = name.lower()
            if lower == "cache-control":
                raise ValueError(
                    "Cache-Control is what a targeted field overrides, not one of them"
                )
            if lower in seen:
                raise ValueError(f"{name!r} is listed twice")
            seen.add(lower)
        return value

    @field_validator("methods")
    @classmethod
    def _get_and_head(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(m.upper() for m in value)
        for method in upper:
            if method not in CACHED_METHODS:
                raise ValueError(f"{method!r}: only GET and HEAD are answered from the cache")
        if "GET" not in upper:
            raise ValueError("GET is required: HEAD is answered from GET's stored answers")
        return upper

    @model_validator(mode="after")
    def _head_to_convert(self) -> RouteCacheConfig:
        if "convert_head" in self.model_fields_set and "HEAD" not in self.methods:
            raise ValueError(
                "convert_head is set, but methods leaves HEAD out: a HEAD passes the cache "
                "by and is never sent on as a GET (add HEAD to methods, or remove the key)"
            )
        return self

    def policy(self) -> CachePolicy:
        head = "HEAD" in self.methods
        return CachePolicy(
            ttl=self.ttl,
            max_body_size=self.max_body_size,
            head=head,
            convert_head=head and self.convert_head,
            fill_on_range=self.fill_on_range,
            key=self.key.spec(),
            stale_while_revalidate=self.stale_while_revalidate,
            stale_if_error=self.stale_if_error,
            lock=self.lock,
            lock_timeout=self.lock_timeout,
            tag_header=self.tag_header.lower() if self.tag_header is not None else None,
            targeted=tuple(name.lower() for name in self.targeted_fields),
        )
