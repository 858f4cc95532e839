"""Gather the work submitted during one event-loop turn into one batch.

Concurrent requests each call :meth:`Coalescer.submit`; the first one of a
turn schedules a flush with ``call_soon``, which runs after every callback
already queued for this turn, so all requests woken together share one batch
(and one Redis round trip). A batch never exceeds ``max_batch`` items; a
bigger turn is split into batches that run concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

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
        self, flush: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 256
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch!r}")
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Queue ``item`` for this turn's batch and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    async def drain(self) -> None:
        """Wait until every batch dispatched so far has finished."""
        while self._running or self._pending:
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            else:
                await asyncio.sleep(0)

    def _dispatch(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._max_batch):
            task = asyncio.get_running_loop().create_task(
                self._run(pending[start : start + self._max_batch])
            )
            # Keep a reference: the loop holds tasks only weakly.
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:
            # Every waiter learns the outcome; a cancelled flush cancels its waiters.
            for _, future in batch:
                if not future.done():
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
