"""Inbound concurrency cap: the local app never holds more than ``max_in_flight`` requests.

Beyond the cap a request may wait (up to ``max_queue`` of them, each at most
``queue_timeout``); beyond that it is answered 503 with ``Retry-After`` at
once, so a slow app sheds load instead of collapsing under a growing queue.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from mesh.chain import Handler
from mesh.exchange import Exchange
from sidecar.resilience_config import InboundLimitConfig


class InboundLimitFilter:
    def __init__(self, config: InboundLimitConfig) -> None:
        self._config = config
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._waiting = 0
        self.shed = 0

    @property
    def in_flight(self) -> int:
        return self._config.max_in_flight - self._slots._value

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        if self._slots.locked():
            if self._waiting >= self._config.max_queue:
                return self._refuse(ex)
            self._waiting += 1
            try:
                async with asyncio.timeout(self._config.queue_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                return self._refuse(ex)
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        try:
            return await next_handler(ex)
        finally:
            self._slots.release()

    def _refuse(self, ex: Exchange) -> web.Response:
        self.shed += 1
        return ex.problem(
            503,
            "Overloaded",
            f"the service already has {self._config.max_in_flight} requests in progress",
            slug="overloaded",
            headers={"Retry-After": str(self._config.retry_after)},
        )
