"""Purges shared through a Redis stream: what a reader carries out, against a real
redis-server (no edge), and what an entry read back must say."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis import asyncio as aioredis

from demo.processes import RedisServer
from edge.cache.admin import Purge
from edge.cache.shared_purges import (
    FIELD_ORIGIN,
    FIELD_PURGE,
    PurgeNotShared,
    SharedPurgeMetrics,
    SharedPurges,
    redis_client,
)

STREAM = "test:purges"


def reader(
    url: str, node: str, applied: list[Purge], timeout: float = 1.0, since_ms: int | None = None
) -> tuple[SharedPurges, CollectorRegistry]:
    registry = CollectorRegistry()

    def apply(purge: Purge) -> int:
        applied.append(purge)
        return 1

    shared = SharedPurges(
        redis_client(url, timeout),
        STREAM,
        100,
        timeout,
        node,
        apply,
        SharedPurgeMetrics(registry),
        since_ms,
    )
    return shared, registry


def counted(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("meshgate_cache_shared_purges_total", {"outcome": outcome})
    return value or 0.0


def test_a_purge_says_itself_as_the_admin_body_would() -> None:
    assert Purge(tags=("a", "b")).as_json() == {"tags": ["a", "b"]}
    assert Purge(route="r", prefix="/x").as_json() == {"route": "r", "prefix": "/x"}
    assert Purge().as_json() == {"all": True}


def test_entries_are_carried_out_unless_this_edge_wrote_them_or_they_say_no_purge() -> None:
    applied: list[Purge] = []
    shared, registry = reader("redis://127.0.0.1:1/0", "edge-a", applied)  # never connects
    shared.take("1-0", {b"purge": b'{"tags": ["t"]}', b"origin": b"edge-b"})
    shared.take("2-0", {FIELD_PURGE: '{"tags": ["u"]}', FIELD_ORIGIN: "edge-a"})  # its own
    shared.take("3-0", {FIELD_PURGE: "{not json", FIELD_ORIGIN: "edge-b"})
    shared.take("4-0", {FIELD_PURGE: '{"tags": []}', FIELD_ORIGIN: "edge-b"})
    shared.take("5-0", {FIELD_ORIGIN: "edge-b"})
    shared.take("6-0", {FIELD_PURGE: '{"all": true}'})
    assert applied == [Purge(tags=("t",)), Purge()]
    assert shared.last_id == "6-0"  # every entry counts as read
    assert shared.view() == {
        "stream": STREAM,
        "node": "edge-a",
        "last_id": "6-0",
        "reading": False,  # never started
        "read_error": None,
    }
    assert counted(registry, "applied") == 2
    assert counted(registry, "invalid") == 3


async def test_a_reader_goes_on_from_the_last_entry_it_read(redis_server: RedisServer) -> None:
    applied: list[Purge] = []
    mine, _ = reader(redis_server.url, "edge-a", [])
    client = aioredis.from_url(redis_server.url)
    await mine.publish(Purge(prefix="/before"))
    seconds, micros = await client.time()
    # A reader that started after that purge (on Redis's clock) does not carry it out.
    after = seconds * 1000 + micros // 1000 + 1  # the next millisecond
    other, _ = reader(redis_server.url, "edge-b", applied, since_ms=after)
    try:
        await other._read_once()
        assert applied == []
        # Appended while the other edge was not reading: both come when it reads again.
        first = await mine.publish(Purge(tags=("user-7",)))
        await mine.publish(Purge(route="users:/api/users"))
        await other._read_once()
        assert applied == [Purge(tags=("user-7",)), Purge(route="users:/api/users")]
        # Its own entries are read past, not carried out.
        await other.publish(Purge(tags=("own",)))
        await other._read_once()
        assert len(applied) == 2
        entries: Any = await client.xrange(STREAM)
        assert [e[0].decode() for e in entries].index(first) == 1
        assert json.loads(entries[1][1][b"purge"]) == {"tags": ["user-7"]}
        assert entries[1][1][b"origin"] == b"edge-a"
    finally:
        await client.aclose()
        await mine.stop()
        await other.stop()


async def test_a_reader_begins_where_its_process_started(redis_server: RedisServer) -> None:
    # An edge that could not reach Redis when it started still carries out what was
    # appended since, and nothing from well before.
    applied: list[Purge] = []
    mine, _ = reader(redis_server.url, "edge-a", [])
    try:
        await mine.publish(Purge(prefix="/long-ago"))
        await asyncio.sleep(0.05)
        late, _ = reader(redis_server.url, "edge-b", applied, since_ms=int(time.time() * 1000))
        await mine.publish(Purge(prefix="/since"))
        await late._read_once()
        assert applied == [Purge(prefix="/since")]
        await late.stop()
        default, _ = reader(redis_server.url, "edge-c", applied)  # since: a margin before now
        await default._read_once()
        assert applied[1:] == [Purge(prefix="/long-ago"), Purge(prefix="/since")]
        await default.stop()
    finally:
        await mine.stop()


async def test_a_redis_that_hangs_fails_the_append_in_time(redis_server: RedisServer) -> None:
    shared, registry = reader(redis_server.url, "edge-a", [], timeout=0.5)
    await shared.publish(Purge(tags=("t",)))  # connected
    assert redis_server.process is not None and redis_server.process.proc is not None
    redis = redis_server.process.proc
    redis.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(PurgeNotShared, match="Redis"):
            await asyncio.wait_for(shared.publish(Purge(tags=("u",))), 5)
        assert counted(registry, "unpublished") == 1
    finally:
        redis.send_signal(signal.SIGCONT)
        await shared.stop()


async def test_a_purge_that_cannot_be_appended_says_why(redis_server: RedisServer) -> None:
    shared, registry = reader(redis_server.url, "edge-a", [], timeout=0.5)
    redis_server.stop()
    try:
        with pytest.raises(PurgeNotShared, match="Redis"):
            await shared.publish(Purge(tags=("t",)))
        assert counted(registry, "unpublished") == 1
        assert counted(registry, "published") == 0
    finally:
        await shared.stop()


async def test_the_reader_outlives_a_failure_and_goes_on(redis_server: RedisServer) -> None:
    applied: list[Purge] = []

    def apply(purge: Purge) -> int:
        if purge.tags == ("boom",):
            raise RuntimeError("a store that failed")
        applied.append(purge)
        return 1

    registry = CollectorRegistry()
    shared = SharedPurges(
        redis_client(redis_server.url, 1.0),
        STREAM,
        100,
        1.0,
        "edge-b",
        apply,
        SharedPurgeMetrics(registry),
    )
    other, _ = reader(redis_server.url, "edge-a", [])
    shared.start()
    try:
        await other.publish(Purge(tags=("boom",)))
        await other.publish(Purge(tags=("ok",)))
        await _until(lambda: applied == [Purge(tags=("ok",))])
        assert registry.get_sample_value("meshgate_cache_shared_purge_read_errors_total") == 1
        assert shared.view()["reading"] is True  # the next read succeeded
        # Stopping ends the reader between reads; it never has to be cancelled.
        task = shared._task
        await shared.stop()
        assert task is not None and task.done() and not task.cancelled()
        assert shared.view()["reading"] is False
    finally:
        await shared.stop()
        await other.stop()


async def _until(condition: Callable[[], bool]) -> None:
    """Until ``condition`` holds, looked at every 20 ms; fails the test after 10 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")
