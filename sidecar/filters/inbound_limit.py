"""Inbound concurrency cap: the local app never holds more than ``max_in_flight`` requests.

Beyond the cap a request may wait (up to ``max_queue`` of them, each at most
``queue_timeout``); beyond that it is answered 503 with ``Retry-After`` at
once, so a slow app sheds load instead of collapsing under a growing queue.

A reload may change all four settings while requests hold slots and wait for
them (:meth:`InboundLimitFilter.reconfigure`): a raised cap admits waiting
requests at once, in the order they came; a lowered one admits no new request
until the app holds fewer than it allows (no request is interrupted); a
smaller queue turns away only requests that come after the change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from sidecar.resilience_config import InboundLimitConfig


class Slots:
    """``limit`` slots, and a first-come first-served queue of at most ``max_queue``
    waiters for them; both may change at any time (:meth:`resize`).

    ``in_flight`` counts the slots held. A slot is handed to the longest waiter
    as it is released, so a request arriving meanwhile never overtakes one that waits.
    """

    def __init__(self, limit: int, max_queue: int) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody waits for it."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def take(self, timeout_s: float) -> bool:
        """A slot, waiting at most ``timeout_s`` in the queue; False when the queue is
        full or the time ran out (then no slot is held)."""
        if self.try_take():
            return True
        if len(self._waiters) >= self.max_queue:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            # Handed a slot just as the time ran out: it is this request's.
            return not self._abandon(waiter)
        except BaseException:  # cancelled: the client went away
            if not self._abandon(waiter):
                self.release()
            raise
        return True

    def _abandon(self, waiter: asyncio.Future[None]) -> bool:
        """Take ``waiter`` out of the queue; False when it was handed a slot already."""
        if waiter.done() and not waiter.cancelled():
            return False
        waiter.cancel()
        with contextlib.suppress(ValueError):  # already passed over by _hand_over
            self._waiters.remove(waiter)
        return True

    def release(self) -> None:
        """Give back a slot taken with :meth:`try_take` or :meth:`take`."""
        self.in_flight -= 1
        self._hand_over()

    def resize(self, limit: int, max_queue: int) -> None:
        """New limits from now on; waiters a raised limit makes room for get their slot."""
        self.limit = limit
        self.max_queue = max_queue
        self._hand_over()

    def _hand_over(self) -> None:
        waiters = self._waiters
        while waiters and self.in_flight < self.limit:
            waiter = waiters.popleft()
            if waiter.done():
                continue  # cancelled; its task, not resumed yet, will find it gone
            self.in_flight += 1
            waiter.set_result(None)


class InboundLimitFilter:
    def __init__(self, config: InboundLimitConfig) -> None:
        self._config = config
        self._slots = Slots(config.max_in_flight, config.max_queue)
        self.shed = 0

    @property
    def in_flight(self) -> int:
        return self._slots.in_flight

    def reconfigure(self, config: InboundLimitConfig) -> None:
        """Apply new settings at once (see the module docstring)."""
        self._config = config
        self._slots.resize(config.max_in_flight, config.max_queue)

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        slots = self._slots
        if not slots.try_take() and not await slots.take(self._config.queue_timeout):
            return self._refuse(ex)
        try:
            return await next_handler(ex)
        finally:
            slots.release()

    def _refuse(self, ex: Exchange) -> web.Response:
        self.shed += 1
        return ex.problem(
            503,
            "Overloaded",
            f"the service already has {self._config.max_in_flight} requests in progress",
            slug="overloaded",
            headers={"Retry-After": str(self._config.retry_after)},
        )
