"""mesh.loop.running_loop: the loop asyncio would return, without asking asyncio each time."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

import mesh.loop
from mesh.loop import running_loop


def test_outside_a_running_loop_it_raises_like_asyncio() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        running_loop()


def test_inside_a_loop_it_is_that_loop_every_time() -> None:
    async def ask() -> list[asyncio.AbstractEventLoop]:
        return [running_loop() for _ in range(3)]

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(ask()) == [loop] * 3
    finally:
        loop.close()


def test_a_second_loop_after_the_first_is_seen_not_the_remembered_one() -> None:
    async def ask() -> asyncio.AbstractEventLoop:
        return running_loop()

    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(ask()) is first
        assert second.run_until_complete(ask()) is second
    finally:
        first.close()
        second.close()


def test_loops_in_two_threads_each_get_their_own() -> None:
    seen: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]] = {}
    both_inside = threading.Barrier(2)

    async def ask(name: str) -> None:
        before = running_loop()
        both_inside.wait(5)  # the other thread's loop is running now, and remembered
        seen[name] = (before, running_loop())

    def run(name: str) -> None:
        asyncio.run(ask(name))

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["a"][0] is seen["a"][1] and seen["b"][0] is seen["b"][1]
    assert seen["a"][0] is not seen["b"][0]


def test_a_forked_child_forgets_the_parents_loop() -> None:
    async def fork_inside() -> int:
        running_loop()
        assert mesh.loop._cached is not None
        pid = os.fork()
        if pid == 0:  # the child: nothing remembered from the parent
            os._exit(0 if mesh.loop._cached is None else 1)
        return pid

    child = asyncio.run(fork_inside())
    assert os.waitpid(child, 0)[1] == 0
