"""Copying a relayed body into a new entry: whole or not at all, bounded."""

from __future__ import annotations

from edge.cache.flights import Flights
from edge.cache.store import CacheStore, Entry
from edge.cache.writer import EntryWriter
from tests.edge.cache.entries import make_entry


def head() -> Entry:
    return make_entry(headers={"ETag": '"v"'}, shared=True)


def rig(limit: int = 100) -> tuple[CacheStore, Flights, list[tuple[str, str]], EntryWriter]:
    store = CacheStore(10**6, 10)
    flights = Flights()
    dropped: list[tuple[str, str]] = []
    writer = EntryWriter(
        store, head(), limit, flights.start("k"), lambda r, w: dropped.append((r, w))
    )
    return store, flights, dropped, writer


def test_a_whole_body_is_stored_and_the_flight_ends() -> None:
    store, flights, dropped, writer = rig()
    writer.write(b"hello ")
    writer.write(b"world")
    assert len(store) == 0 and flights.get("k") is not None  # not before the end
    assert (writer.copying, writer.whole) == (True, None)
    writer.close()
    [entry] = list(store)
    assert writer.whole is entry and not writer.copying
    assert (entry.body, entry.status, entry.etag, entry.shared) == (
        b"hello world",
        200,
        '"v"',
        True,
    )
    assert flights.get("k") is None and dropped == []
    writer.abort()  # after close: nothing
    assert len(store) == 1 and dropped == []


def test_past_the_limit_the_copy_is_dropped_at_once() -> None:
    store, flights, dropped, writer = rig(limit=10)
    writer.write(b"x" * 10)
    assert flights.get("k") is not None
    writer.write(b"y")
    assert dropped == [("r", "too-large")] and flights.get("k") is None
    assert (writer.copying, writer.whole) == (False, None)
    writer.write(b"z" * 100)  # ignored
    writer.close()
    writer.abort()
    assert len(store) == 0 and dropped == [("r", "too-large")]


def test_a_body_cut_short_is_never_stored() -> None:
    store, flights, dropped, writer = rig()
    writer.write(b"half")
    writer.abort()
    writer.close()  # after abort: nothing
    assert len(store) == 0 and dropped == [("r", "incomplete")] and flights.get("k") is None


def test_an_empty_body_is_a_whole_body() -> None:
    store, _, _, writer = rig()
    writer.close()
    assert [e.body for e in store] == [b""]
