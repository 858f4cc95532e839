"""Batching of concurrent submissions per loop turn (edge/ratelimit/coalescer.py)."""

from __future__ import annotations

import asyncio

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
