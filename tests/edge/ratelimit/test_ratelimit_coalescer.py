"""Batching of concurrent submissions per loop turn (edge/ratelimit/coalescer.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from edge.ratelimit.coalescer import Coalescer


async def test_one_batch_per_loop_turn() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0)
        return [i * 2 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(flush)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(50)))
    assert results == [i * 2 for i in range(50)]
    assert batches == [list(range(50))]
    assert await coalescer.submit(7) == 14
    assert len(batches) == 2


async def test_batches_are_bounded() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=8)
    assert await asyncio.gather(*(coalescer.submit(i) for i in range(20))) == list(range(20))
    assert sorted(sizes) == [4, 8, 8]


async def test_errors_reach_every_waiter() -> None:
    async def flush(items: list[int]) -> list[int]:
        raise RuntimeError("boom")

    coalescer: Coalescer[int, int] = Coalescer(flush)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_wrong_result_count_is_an_error() -> None:
    async def flush(items: list[int]) -> list[int]:
        return []

    coalescer: Coalescer[int, int] = Coalescer(flush)
    with pytest.raises(RuntimeError, match="0 results for 1"):
        await coalescer.submit(1)


async def test_a_cancelled_submitter_does_not_break_the_batch() -> None:
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        await release.wait()
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush)
    doomed = asyncio.ensure_future(coalescer.submit(1))
    kept = asyncio.ensure_future(coalescer.submit(2))
    await asyncio.sleep(0.01)
    doomed.cancel()
    release.set()
    assert await kept == 2
    await coalescer.drain()


async def test_one_round_in_flight_gathers_what_comes_meanwhile() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            await release.wait()  # the first round stays in flight
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush, max_rounds=1)
    first = asyncio.ensure_future(coalescer.submit(0))
    await asyncio.sleep(0.01)
    assert batches == [[0]]  # nothing was in flight: no waiting
    later = [asyncio.ensure_future(coalescer.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    assert batches == [[0]]  # submitted over several turns, held back meanwhile
    release.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [1, 2, 3, 4, 5]
    assert batches == [[0], [1, 2, 3, 4, 5]]  # one batch, not one per turn


async def test_rounds_are_not_limited_by_default() -> None:
    # Events, not sleeps: a loaded machine must not merge the two rounds into one.
    in_flight = 0
    most = 0
    first_started, second_started = asyncio.Event(), asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if not first_started.is_set():
            first_started.set()
            # In flight until another round starts (given up after a while, to fail, not hang).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(second_started.wait(), 5.0)
        else:
            second_started.set()
        in_flight -= 1
        return items

    coalescer: Coalescer[int, int] = Coalescer(flush)
    first = coalescer.submit(0)
    await first_started.wait()
    second = coalescer.submit(1)  # while the first round is in flight
    assert [await first, await second] == [0, 1]
    assert most == 2


def test_max_rounds_must_be_positive() -> None:
    async def flush(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match="max_rounds"):
        Coalescer(flush, max_rounds=0)


async def test_submit_queues_at_once_and_returns_the_future() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        return [i + 1 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(flush)
    futures = [coalescer.submit(i) for i in range(3)]  # not awaited yet: queued all the same
    assert all(isinstance(f, asyncio.Future) and not f.done() for f in futures)
    assert [await f for f in futures] == [1, 2, 3]
    assert batches == [[0, 1, 2]]
