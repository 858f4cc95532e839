"""A bounded LRU of answers about tokens, each entry valid until its own deadline.

Keys are SHA-256 digests of the token text, never the token: a heap dump or a
debug listing of the cache does not hold credentials, and every key has the same
small size whatever the token length.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


def token_digest(token: str) -> bytes:
    """The cache key of ``token``. Callers bound the token size before hashing."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenCache(Generic[V]):
    """At most ``max_entries`` values, each served until ``expires_at`` (by ``clock``).

    Contract: :meth:`get` never returns a value at or after its deadline; when
    full, :meth:`put` evicts the least recently used entry. Not thread-safe; meant
    for one event loop, where get/put do not interleave.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, V]] = OrderedDict()

    def get(self, key: bytes) -> V | None:
        """The live value for ``key``, or None if absent or expired (then dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: bytes, value: V, expires_at: float) -> None:
        """Remember ``value`` until ``expires_at``; a deadline already past is ignored."""
        if expires_at <= self._clock():
            return
        self._entries[key] = (expires_at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        """Forget ``key`` if present."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything (e.g. after a key is revoked)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
