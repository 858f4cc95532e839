"""Values derived from an object, computed once per object (keyed by identity).

The verifiers' caches hand out the *same* Claims or ApiKeyRecord object for
every request of a cached caller, so anything derived from it (the Identity,
its headers) can be derived once and found again by ``id()``: a dictionary
look-up per request instead of building new objects. Routes are the same
objects for every request until the next catalog change or reload, so the
settings features read from a route's options (its auth policy, address list,
header changes) are derived once per route the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ObjectMemo(Generic[K, V]):
    """``derive(obj)``, remembered per object for at most ``max_entries`` objects.

    Each remembered object is held by the memo, so its ``id`` cannot be reused
    while the entry lives: an ``id`` found in the memo is that object's. When
    full, the memo starts afresh (the objects' own caches bound how many are
    in use). ``derive`` must never return None (None means "not remembered").
    Not thread-safe; meant for one event loop.
    """

    def __init__(self, derive: Callable[[K], V], max_entries: int = 4096) -> None:
        self._derive = derive
        self._max = max_entries
        self._values: dict[int, V] = {}
        self._held: dict[int, K] = {}
        self.known: Callable[[int], V | None] = self._values.get
        """``known(id(obj))``: the value remembered for ``obj``, else None.

        The hit path of calling the memo, as one C-level dict look-up: hot
        paths call it first and the memo itself only when it gives None.
        """

    def __call__(self, obj: K) -> V:
        key = id(obj)
        value = self._values.get(key)
        if value is not None:
            return value
        value = self._derive(obj)
        if len(self._values) >= self._max:
            # clear(), not new dicts: ``known`` stays bound to ``_values``.
            self._values.clear()
            self._held.clear()
        self._held[key] = obj
        self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)
