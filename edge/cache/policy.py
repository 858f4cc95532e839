"""A route's cache policy, as configured (``routes[].cache``; :mod:`edge.cache.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.cache.key import KeySpec


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How one route's answers are cached."""

    ttl: float | None = None
    """Freshness of an answer that gives none itself (``max-age``, ``s-maxage``,
    ``Expires``); None: such an answer is not stored."""
    max_body_size: int = 1024 * 1024
    """Largest body stored; a larger one streams to the client, unstored."""
    head: bool = True
    """HEAD requests are answered from the stored GET answers."""
    convert_head: bool = True
    """A HEAD that finds nothing fresh goes to the service as a GET, whose answer is
    stored as a GET's would be (nginx's ``proxy_cache_convert_head``); False: sent on as
    a HEAD, its answer not stored. Never True without ``head``."""
    fill_on_range: bool = True
    """A GET with a ``Range`` that no fresh stored 200 answers goes on whole (without
    ``Range`` and ``If-Range``), as a GET miss, and its range is cut from the answer it
    stores; False: it passes the cache by with its ``Range``, its answer not stored."""
    key: KeySpec = field(default_factory=KeySpec)
    stale_while_revalidate: float = 0.0
    """Seconds past freshness an answer is served while revalidated in the background,
    unless the answer says otherwise."""
    stale_if_error: float = 0.0
    """Seconds past freshness an answer is served when the service fails, unless the
    answer says otherwise."""
    lock: bool = True
    """Concurrent misses of one key wait for a single fetch."""
    lock_timeout: float = 5.0
    """Longest a waiting miss waits before fetching for itself."""
    tag_header: str | None = "surrogate-key"
    """Lower-cased name of the response header whose tags an entry keeps (and which the
    client never sees, :mod:`edge.cache.tags`); None: answers are not tagged."""
    targeted: tuple[str, ...] = ("meshgate-cache-control",)
    """Lower-cased names of the targeted cache-control fields this cache obeys, first
    first (:mod:`edge.cache.targeted`); empty: ``Cache-Control`` alone."""

    def describe(self) -> dict[str, Any]:
        return {
            "ttl": self.ttl,
            "max_body_size": self.max_body_size,
            "methods": ["GET", "HEAD"] if self.head else ["GET"],
            "convert_head": self.convert_head,
            "fill_on_range": self.fill_on_range,
            "key": self.key.describe(),
            "stale_while_revalidate": self.stale_while_revalidate,
            "stale_if_error": self.stale_if_error,
            "lock": self.lock,
            "lock_timeout": self.lock_timeout,
            "tag_header": self.tag_header,
            "targeted_fields": list(self.targeted),
        }
