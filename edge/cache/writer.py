"""Filling a new entry with the body as it is relayed to the client (a :class:`mesh.proxy.BodyTee`).

The proxy hands each piece of the service's body to the writer as it sends it
on; the writer keeps a copy until the body ends, then stores the entry. The
client's answer never waits for it and never sees it fail:

* past the route's ``max_body_size`` the copy is dropped at once (and the rest
  of the body is relayed uncopied), so the edge holds at most that much per
  response being stored;
* a body that ends early (the service failed, the client went away) is never
  stored: an entry is only ever a whole answer.

Either way the key's flight ends (:mod:`edge.cache.flights`), so requests
waiting for this fetch go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from edge.cache.flights import Flight
from edge.cache.store import CacheStore, Entry


class EntryWriter:
    """Copies one response's body into a new entry of ``store`` (see the module docstring)."""

    __slots__ = (
        "_done",
        "_flight",
        "_head",
        "_limit",
        "_on_drop",
        "_parts",
        "_size",
        "_store",
        "whole",
    )

    def __init__(
        self,
        store: CacheStore,
        head: Entry,
        limit: int,
        flight: Flight | None,
        on_drop: Callable[[str, str], None],
    ) -> None:
        """``head``: the new entry, known when the response head came, but for its body
        (empty until the body is whole). ``on_drop(route, why)`` is told of a copy
        dropped (``too-large``, ``incomplete``)."""
        self._store = store
        self._head = head
        self._limit = limit
        self._flight = flight
        self._on_drop = on_drop
        self._parts: list[bytes] = []
        self._size = 0
        self._done = False
        self.whole: Entry | None = None
        """The whole answer, once :meth:`close` has stored it (in the store, unless it
        alone is larger than the store's bound); None before, or when dropped."""

    @property
    def copying(self) -> bool:
        """Neither stored nor dropped yet: the copy still takes pieces."""
        return not self._done

    def write(self, piece: bytes) -> None:
        if self._done:
            return
        self._size += len(piece)
        if self._size > self._limit:
            self._drop("too-large")
            return
        self._parts.append(piece)

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        body = b"".join(self._parts)
        self._parts = []
        whole = self.whole = replace(self._head, body=body, size=0)  # size: measured anew
        self._store.put(whole)
        self._end_flight()

    def abort(self) -> None:
        if not self._done:
            self._drop("incomplete")

    def _drop(self, why: str) -> None:
        self._done = True
        self._parts = []
        self._on_drop(self._head.route, why)
        self._end_flight()

    def _end_flight(self) -> None:
        if self._flight is not None:
            self._flight.end()
