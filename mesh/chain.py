"""Filters and the chain that runs them.

A filter has one shape, in both directions: it gets the exchange and the next
handler, and returns a response. It may answer itself instead of calling
``next`` (Envoy's StopIteration), or edit the exchange before and the response
after. The chain is composed once (per snapshot), not per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import FunctionType, MethodType
from typing import Protocol, runtime_checkable

from aiohttp import web

from mesh.exchange import Exchange
from mesh.loop import running_loop

Handler = Callable[[Exchange], Awaitable[web.StreamResponse]]


class Filter(Protocol):
    """``async def __call__`` in most filters; a plain ``def`` may hand back the
    next handler's own awaitable when it has nothing to do on the way out."""

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]: ...


@runtime_checkable
class FusibleFilter(Filter, Protocol):
    """A filter that may take over the work of the filter right after it."""

    def fuse_next(self, following: Filter) -> Filter | None:
        """One filter doing this one's work and then exactly ``following``'s, or
        None to keep both. Called only when ``following`` comes right after."""
        ...


def fuse_adjacent(filters: Sequence[Filter]) -> list[Filter]:
    """``filters`` with each one that offers to (:class:`FusibleFilter`) fused
    with the filter right after it, repeatedly, left to right.

    Each chain level costs every request a call or two; fusing only ever
    joins neighbours, so every filter still sees the exchange exactly as the
    filters before it left it. Call it on the list given to :func:`build_chain`.
    """
    fused: list[Filter] = []
    for flt in filters:
        previous = fused[-1] if fused else None
        if isinstance(previous, FusibleFilter):
            merged = previous.fuse_next(flt)
            if merged is not None:
                fused[-1] = merged
                continue
        fused.append(flt)
    return fused


def build_chain(filters: Sequence[Filter], terminal: Handler) -> Handler:
    """Compose ``filters`` (outermost first) around ``terminal`` into one handler."""
    handler = terminal
    for flt in reversed(filters):
        handler = _bind(flt, handler)
    return handler


def filter_call(flt: Filter) -> Filter:
    """What to call for ``flt`` on every request: itself if a function or a bound
    method, else its bound ``__call__``. Calling an object filter itself goes
    through the type's generic call slot, which looks the method up and binds
    it again on every request."""
    return flt if isinstance(flt, FunctionType | MethodType) else flt.__call__


def _bind(flt: Filter, next_handler: Handler) -> Handler:
    call = filter_call(flt)

    # A plain function handing back the filter's own coroutine: an ``async def``
    # wrapper would add a coroutine object and a frame per filter per request.
    def handle(ex: Exchange) -> Awaitable[web.StreamResponse]:
        return call(ex, next_handler)

    return handle


def answered(response: web.StreamResponse) -> Awaitable[web.StreamResponse]:
    """``response`` as a plain-function filter's return value, when it answers itself.

    A done future: awaiting it does not suspend, and it costs less than a
    coroutine made only to return ``response``. Call it on the event loop.
    """
    future: asyncio.Future[web.StreamResponse] = running_loop().create_future()
    future.set_result(response)
    return future
