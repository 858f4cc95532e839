"""Client connection limits (mesh/connections.py): the accounting, then real sockets."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from mesh.connections import (
    REFUSED_PER_ADDRESS,
    REFUSED_TOTAL,
    ConnectionCounts,
    ConnectionLimits,
)
from mesh.server import Listener
from tests.integration.harness import read_until_closed

# -- the accounting ------------------------------------------------------------


def test_admits_up_to_the_total_then_refuses_without_counting() -> None:
    counts = ConnectionCounts(max_total=2, max_per_address=None)
    assert counts.admit("10.0.0.1") is None
    assert counts.admit("10.0.0.2") is None
    assert counts.admit("10.0.0.3") == REFUSED_TOTAL
    assert counts.open == 2
    counts.release("10.0.0.1")
    assert counts.open == 1
    assert counts.admit("10.0.0.3") is None


def test_per_address_limit_counts_each_address_apart() -> None:
    counts = ConnectionCounts(max_total=None, max_per_address=2)
    assert counts.admit("10.0.0.1") is None
    assert counts.admit("10.0.0.1") is None
    assert counts.admit("10.0.0.1") == REFUSED_PER_ADDRESS
    assert counts.admit("10.0.0.2") is None  # another address is not held back
    assert (counts.held_by("10.0.0.1"), counts.held_by("10.0.0.2"), counts.open) == (2, 1, 3)
    counts.release("10.0.0.1")
    assert counts.admit("10.0.0.1") is None


def test_released_addresses_are_forgotten() -> None:
    """A busy internet edge sees millions of addresses: none may stay once it has gone."""
    counts = ConnectionCounts(max_total=None, max_per_address=4)
    for i in range(1000):
        assert counts.admit(f"10.0.{i // 256}.{i % 256}") is None
    for i in range(1000):
        counts.release(f"10.0.{i // 256}.{i % 256}")
    assert counts.open == 0
    assert counts._by_address == {}


def test_the_total_is_checked_before_the_address() -> None:
    counts = ConnectionCounts(max_total=1, max_per_address=1)
    assert counts.admit("10.0.0.1") is None
    assert counts.admit("10.0.0.2") == REFUSED_TOTAL
    assert counts.held_by("10.0.0.2") == 0  # a refused connection holds nothing


def test_no_limits_admits_everything() -> None:
    counts = ConnectionCounts(max_total=None, max_per_address=None)
    assert all(counts.admit("10.0.0.1") is None for _ in range(10_000))
    assert counts.open == 10_000


# -- real sockets ----------------------------------------------------------------


class Recorder:
    """A ConnectionObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.open = 0
        self.refusals: list[str] = []
        self.malformed_requests = 0

    def opened(self) -> None:
        self.open += 1

    def closed(self) -> None:
        self.open -= 1

    def refused(self, reason: str) -> None:
        self.refusals.append(reason)

    def malformed(self) -> None:
        self.malformed_requests += 1


async def _ok(_: web.BaseRequest) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Listener, Recorder]]:
    recorder = Recorder()
    listener = Listener(
        "test", _ok, "127.0.0.1", 0, connections=request.param, connection_observer=recorder
    )
    await listener.start()
    try:
        yield listener, recorder
    finally:
        await listener.stop()


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> float:
    """Seconds until the server closes the connection; fails after ``within``."""
    took, data = await read_until_closed(reader, within)
    assert data == b"", f"the server answered instead of closing: {data[:80]!r}"
    return took


async def _get(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/") as resp,
    ):
        return resp.status


async def _wait_for(condition: object, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("served", [ConnectionLimits(idle_timeout=0.5)], indirect=True)
async def test_idle_and_trickling_connections_are_closed_after_the_idle_timeout(
    served: tuple[Listener, Recorder],
) -> None:
    listener, recorder = served
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", listener.port)
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", listener.port)
    slow_writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n")

    async def trickle() -> None:
        # One header line every 100 ms: never a complete head (slowloris).
        for i in range(40):
            await asyncio.sleep(0.1)
            if slow_writer.is_closing():
                return
            slow_writer.write(b"X-Slow-%d: x\r\n" % i)

    trickling = asyncio.create_task(trickle())
    try:
        idle_s, slow_s = await asyncio.gather(
            _closed_by_server(idle_reader, 3.0), _closed_by_server(slow_reader, 3.0)
        )
        # Partial data does not extend the time: closed at the idle timeout, not 4 s later.
        assert 0.4 <= idle_s < 2.0 and 0.4 <= slow_s < 2.0
        assert await _get(listener.port) == 200  # others are served meanwhile
        await _wait_for(lambda: recorder.open == 0)
    finally:
        trickling.cancel()
        idle_writer.close()
        slow_writer.close()


@pytest.mark.parametrize(
    ("served", "limit", "reason"),
    [
        pytest.param(ConnectionLimits(max_connections=3), 3, REFUSED_TOTAL, id="total"),
        pytest.param(
            ConnectionLimits(max_connections_per_address=2), 2, REFUSED_PER_ADDRESS, id="address"
        ),
    ],
    indirect=["served"],
)
async def test_one_connection_over_a_limit_is_closed_at_once_and_counted(
    served: tuple[Listener, Recorder], limit: int, reason: str
) -> None:
    listener, recorder = served
    # What reaches the loop's exception handler: a refusal must not log a traceback.
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, c: loop_errors.append(c))
    held = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(limit)]
    await _wait_for(lambda: recorder.open == limit)
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert await _closed_by_server(reader, 2.0) < 1.0  # no answer: closed unread
        writer.close()
    assert recorder.refusals == [reason] * 5
    assert recorder.open == limit
    gc.collect()  # a failed task reports its exception when it is collected
    await asyncio.sleep(0.05)
    assert loop_errors == []

    _, first = held.pop()
    first.close()
    await _wait_for(lambda: recorder.open == limit - 1)
    assert await _get(listener.port) == 200  # room again
    for _, w in held:
        w.close()
    await _wait_for(lambda: recorder.open == 0)
    assert recorder.refusals == [reason] * 5


@pytest.mark.parametrize("served", [ConnectionLimits()], indirect=True)
async def test_without_limits_many_connections_are_all_served(
    served: tuple[Listener, Recorder],
) -> None:
    listener, recorder = served
    held = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(50)]
    await _wait_for(lambda: recorder.open == 50)
    for _, writer in held:
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    answers = await asyncio.gather(*(reader.read() for reader, _ in held))
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    assert recorder.refusals == []
    await _wait_for(lambda: recorder.open == 0)
