"""Following one Consul endpoint with blocking queries, retried with backoff (tenacity).

Consul answers a query carrying ``?index=N`` only once its data moved past N
(or its ``wait`` ran out), so a loop of such queries sees every change as it
happens. :class:`BlockingFollower` runs that loop for any endpoint: the
catalog watcher follows services with it, the Connect watcher certificates,
roots and intentions.

When Consul cannot be reached the query is retried with jittered exponential
backoff; a retried query asks without an index (from 0), so a restarted Consul
whose indexes went backwards is followed again at once rather than after a
whole blocking ``wait``. An index that goes backwards, or is not positive,
starts over the same way (Consul's own advice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

T = TypeVar("T")

Query = Callable[[str | None], Awaitable[tuple[Any, T]]]
"""``query(index)`` → ``(Consul's index, the data)``; blocks while ``index`` is current."""


class BlockingFollower:
    """Runs blocking-query loops; counts and reports failed attempts.

    ``on_failure(exception, attempt number)`` is called before each retry (the
    first failure of a run of them has number 1).
    """

    def __init__(
        self,
        wait_s: float,
        max_backoff_s: float,
        on_failure: Callable[[BaseException | None, int], None] = lambda _exc, _n: None,
    ) -> None:
        self.wait = f"{max(1, int(wait_s))}s"
        """The ``wait`` to ask Consul for, in its duration syntax."""
        # A blocking query answers within wait + wait/16 (Consul's jitter); past
        # that the connection is presumed dead.
        self._query_timeout = wait_s * 1.1 + 5
        self._max_backoff = max_backoff_s
        self._on_failure = on_failure
        self.errors = 0

    def _failed(self, retry_state: RetryCallState) -> None:
        self.errors += 1
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self._on_failure(exc, retry_state.attempt_number)

    async def query(self, call: Callable[[str | None], Awaitable[T]], index: str | None) -> T:
        """``call(index)``, retried with backoff until it answers.

        Only the first attempt blocks on ``index``: after a failure the agent
        may be a new one whose indexes started over, and a blocking query on an
        index it has not reached would wait out the whole ``wait`` before
        telling us anything. Retries ask without an index, so they answer at once.
        """
        retrying = AsyncRetrying(
            wait=wait_random_exponential(multiplier=0.1, max=self._max_backoff),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._failed,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                at = index if attempt.retry_state.attempt_number == 1 else None
                async with asyncio.timeout(self._query_timeout):
                    result = await call(at)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def follow(self, query: Query[T], on_answer: Callable[[T], None]) -> NoReturn:
        """Forever: ``query`` with the last index, and hand every answer (the first, and
        each one after a change or a timed-out wait) to ``on_answer``."""
        index: str | None = None
        while True:
            new_index, data = await self.query(query, index)
            if index is not None and _as_int(new_index) < _as_int(index):
                index = None
            else:
                index = new_index if _as_int(new_index) > 0 else None
            on_answer(data)


def _as_int(index: Any) -> int:
    try:
        return int(index)
    except (TypeError, ValueError):
        return 0
