"""The inbound cap's slots: first come first served, a bounded queue, resized live."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.filters.inbound_limit import Slots


async def settle() -> None:
    """Let every ready task run (the slots hand over with futures)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_free_slots_are_taken_at_once_and_given_back() -> None:
    slots = Slots(2, max_queue=0)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    assert not await slots.take(1.0)  # no queue: refused at once
    slots.release()
    assert slots.in_flight == 1 and slots.try_take()


async def test_waiters_get_slots_in_the_order_they_came() -> None:
    slots = Slots(1, max_queue=3)
    assert slots.try_take()
    order: list[int] = []

    async def wait(n: int) -> None:
        assert await slots.take(5.0)
        order.append(n)

    tasks = [asyncio.create_task(wait(n)) for n in range(3)]
    await settle()
    assert slots.waiting == 3
    # A newcomer never overtakes a waiter, even when a slot is free for a moment.
    for _ in range(3):
        slots.release()
        assert not slots.try_take()
        await settle()
    assert order == [0, 1, 2]
    await asyncio.gather(*tasks)
    assert slots.in_flight == 1 and slots.waiting == 0


async def test_a_full_queue_refuses_at_once() -> None:
    slots = Slots(1, max_queue=1)
    assert slots.try_take()
    first = asyncio.create_task(slots.take(5.0))
    await settle()
    assert not await slots.take(5.0)
    slots.release()
    assert await first


async def test_a_waiter_whose_time_runs_out_holds_nothing() -> None:
    slots = Slots(1, max_queue=2)
    assert slots.try_take()
    assert not await slots.take(0.01)
    assert slots.waiting == 0 and slots.in_flight == 1
    slots.release()
    assert slots.in_flight == 0


async def test_a_cancelled_waiter_holds_nothing_and_is_passed_over() -> None:
    slots = Slots(1, max_queue=2)
    assert slots.try_take()
    gone = asyncio.create_task(slots.take(5.0))
    stays = asyncio.create_task(slots.take(5.0))
    await settle()
    gone.cancel()  # its future is cancelled now; the task resumes later
    slots.release()  # passes over the cancelled waiter to the next one
    assert await stays
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert slots.in_flight == 1 and slots.waiting == 0


async def test_cancelled_after_being_handed_a_slot_gives_it_back() -> None:
    slots = Slots(1, max_queue=2)
    assert slots.try_take()
    handed = asyncio.create_task(slots.take(5.0))
    await settle()
    slots.release()  # the slot is handed to the waiter ...
    handed.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert slots.in_flight == 0


async def test_a_raised_limit_admits_waiters_at_once() -> None:
    slots = Slots(1, max_queue=4)
    assert slots.try_take()
    waiting = [asyncio.create_task(slots.take(5.0)) for _ in range(3)]
    await settle()
    slots.resize(3, max_queue=4)
    await settle()
    assert [w.done() for w in waiting] == [True, True, False]
    assert slots.in_flight == 3
    slots.resize(4, max_queue=4)
    assert await waiting[2]
    assert slots.in_flight == 4


async def test_a_lowered_limit_interrupts_nobody_and_admits_nobody_until_below_it() -> None:
    slots = Slots(4, max_queue=4)
    for _ in range(4):
        assert slots.try_take()
    slots.resize(2, max_queue=4)
    assert slots.in_flight == 4  # holders keep their slots
    waiter = asyncio.create_task(slots.take(5.0))
    await settle()
    slots.release()
    slots.release()
    await settle()
    assert not waiter.done()  # 2 held: at the new limit
    slots.release()
    assert await waiter
    assert slots.in_flight == 2


async def test_a_smaller_queue_turns_away_only_newcomers() -> None:
    slots = Slots(1, max_queue=3)
    assert slots.try_take()
    queued = [asyncio.create_task(slots.take(5.0)) for _ in range(3)]
    await settle()
    slots.resize(1, max_queue=1)
    assert not await slots.take(5.0)  # the queue is over its new bound
    assert slots.waiting == 3  # those already waiting stay
    for _ in range(3):
        slots.release()
        await settle()
    assert all([await q for q in queued])
