"""Values derived from an object, computed once per object (keyed by identity).

The verifiers' caches hand out the *same* Claims or ApiKeyRecord object for
every request of a cached caller, so anything derived from it (the Identity,
its headers) can be derived once and found again by ``id()``: a dictionary
look-up per request instead of building new objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ObjectMemo(Generic[K, V]):
    """``derive(obj)``, remembered per object for at most ``max_entries`` objects.

    Each entry holds its object, so its ``id`` cannot be reused while the entry
    lives. When full, the memo starts afresh (the objects' own caches bound
    how many are in use). Not thread-safe; meant for one event loop.
    """

    def __init__(self, derive: Callable[[K], V], max_entries: int = 4096) -> None:
        self._derive = derive
        self._max = max_entries
        self._entries: dict[int, tuple[K, V]] = {}

    def __call__(self, obj: K) -> V:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        value = self._derive(obj)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[id(obj)] = (obj, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
