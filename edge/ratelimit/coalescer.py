"""Gather the work submitted during one event-loop turn into one batch.

Concurrent requests each call :meth:`Coalescer.submit`; the first one of a
turn schedules a flush with ``call_soon``, which runs after every callback
already queued for this turn, so all requests woken together share one batch
(and one Redis round trip). A batch never exceeds ``max_batch`` items; a
bigger turn is split into batches that run concurrently (one *round*).

With ``max_rounds``, at most that many rounds are in flight: what is
submitted meanwhile waits and goes out together as soon as a round ends.
Under load this makes batches grow with the round trip instead of sending
one small batch per loop turn, and each batch costs a system call and a
parse whatever its size; when idle nothing waits, as no round is in flight.
An item waits at most for the rounds ahead of it, so a flush that bounds
its own time (the limiter's timeout) bounds the wait too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Generic, TypeVar

from mesh.loop import running_loop

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Calls ``flush(items)`` once per loop turn with everything submitted in that turn.

    ``flush`` must return one result per item, in order; if it raises, every
    submitter of the batch gets the exception. A cancelled submitter simply
    does not receive its result (the item is still flushed). One event loop
    owns an instance.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        max_batch: int = 256,
        max_rounds: int | None = None,
    ) -> None:
        """``max_rounds``: rounds in flight at most (None: no limit, one round per turn)."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch!r}")
        if max_rounds is not None and max_rounds < 1:
            raise ValueError(f"max_rounds must be at least 1, got {max_rounds!r}")
        self._flush = flush
        self._max_batch = max_batch
        self._max_rounds = max_rounds
        self._rounds = 0
        # What was submitted and not yet dispatched, and the future of each, in order: two
        # lists rather than a pair per submission.
        self._pending: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item`` for this turn's batch; the future returned resolves to its result.

        Queued at once, when called (not when awaited). A plain function
        returning the batch's future, rather than a coroutine awaiting it, so
        that each submission costs no coroutine of its own. Cancelling the
        future (or a task awaiting it) only gives up the result. Must be
        called with the owning loop running.
        """
        loop = running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append(item)
        self._futures.append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return future

    async def drain(self) -> None:
        """Wait until every batch dispatched so far has finished."""
        while self._running or self._pending:
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            else:
                await asyncio.sleep(0)

    def _dispatch(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        if self._max_rounds is not None and self._rounds >= self._max_rounds:
            return  # _batch_done dispatches these when a round ends
        pending, self._pending = self._pending, []
        futures, self._futures = self._futures, []
        self._rounds += 1
        size = self._max_batch
        batches = (
            [(pending, futures)]
            if len(pending) <= size
            else [
                (pending[start : start + size], futures[start : start + size])
                for start in range(0, len(pending), size)
            ]
        )
        left = [len(batches)]  # batches of this round still running
        for items, waiting in batches:
            task = running_loop().create_task(self._run(items, waiting))
            # Keep a reference: the loop holds tasks only weakly.
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(partial(self._batch_done, left))

    def _batch_done(self, left: list[int], _: asyncio.Task[None]) -> None:
        left[0] -= 1
        if left[0] == 0:
            self._rounds -= 1
            if self._pending and not self._scheduled:
                # What waited for this round goes out now, as one batch.
                self._scheduled = True
                running_loop().call_soon(self._dispatch)

    async def _run(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._flush(items)
            if len(results) != len(items):
                raise RuntimeError(f"flush returned {len(results)} results for {len(items)} items")
        except BaseException as exc:
            # Every waiter learns the outcome; a cancelled flush cancels its waiters.
            for future in futures:
                if not future.done():
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)
