"""The filter chain: order, short-circuit, and editing on the way back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from mesh.chain import Filter, FusibleFilter, Handler, answered, build_chain, fuse_adjacent
from mesh.exchange import Exchange


def _exchange() -> Exchange:
    request = make_mocked_request("GET", "/x")
    return Exchange(request, "/x", "", "rid", "127.0.0.1", CIMultiDict())


class _Recorder:
    """Appends its name on the way in and out; answers 403 itself when ``stop``."""

    def __init__(self, name: str, log: list[str], *, stop: bool = False) -> None:
        self.name = name
        self.log = log
        self.stop = stop

    async def __call__(self, ex: Exchange, next_handler: Handler) -> web.StreamResponse:
        self.log.append(f"in:{self.name}")
        if self.stop:
            return web.Response(status=403)
        response = await next_handler(ex)
        response.headers[f"X-{self.name}"] = "seen"
        self.log.append(f"out:{self.name}")
        return response


def _run(handler: Handler) -> web.StreamResponse:
    return asyncio.run(_call(handler))


async def _call(handler: Handler) -> web.StreamResponse:
    return await handler(_exchange())


def test_filters_run_outermost_first_and_unwind_in_reverse() -> None:
    log: list[str] = []

    async def terminal(ex: Exchange) -> web.StreamResponse:
        log.append("terminal")
        return web.Response(status=200)

    chain = build_chain([_Recorder("a", log), _Recorder("b", log)], terminal)
    response = _run(chain)
    assert log == ["in:a", "in:b", "terminal", "out:b", "out:a"]
    assert response.status == 200
    assert response.headers["X-a"] == response.headers["X-b"] == "seen"


def test_a_filter_answering_itself_stops_the_chain() -> None:
    log: list[str] = []

    async def terminal(ex: Exchange) -> web.StreamResponse:
        log.append("terminal")
        return web.Response(status=200)

    chain = build_chain([_Recorder("a", log), _Recorder("b", log, stop=True)], terminal)
    response = _run(chain)
    assert response.status == 403
    assert log == ["in:a", "in:b", "out:a"]
    assert "X-b" not in response.headers and response.headers["X-a"] == "seen"


def test_no_filters_is_the_terminal_itself() -> None:
    async def terminal(ex: Exchange) -> web.StreamResponse:
        return web.Response(status=204)

    assert build_chain([], terminal) is terminal


def test_object_function_and_bound_method_filters_are_all_called_in_order() -> None:
    log: list[str] = []

    def plain(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        log.append("plain")
        return next_handler(ex)

    class Holder:
        def method(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
            log.append("method")
            return next_handler(ex)

    async def terminal(ex: Exchange) -> web.StreamResponse:
        log.append("terminal")
        return web.Response()

    chain = build_chain([_Recorder("obj", log), plain, Holder().method], terminal)
    response = _run(chain)
    assert log == ["in:obj", "plain", "method", "terminal", "out:obj"]
    assert response.headers["X-obj"] == "seen"


def test_a_plain_function_filter_answering_itself_with_answered_stops_the_chain() -> None:
    log: list[str] = []

    async def terminal(ex: Exchange) -> web.StreamResponse:
        log.append("terminal")
        return web.Response(status=200)

    def refuse(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        log.append("refuse")
        return answered(web.Response(status=429))

    chain = build_chain([_Recorder("a", log), refuse], terminal)
    response = _run(chain)
    assert response.status == 429
    assert log == ["in:a", "refuse", "out:a"]
    assert response.headers["X-a"] == "seen"


# --- fusing adjacent filters ---------------------------------------------------------------


def _plain(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
    return next_handler(ex)


def _other(ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
    return next_handler(ex)


class _Joins:
    """Fuses with the next filter when that one is ``partner``."""

    def __init__(self, partner: Filter, parts: tuple[Filter, ...] = ()) -> None:
        self.partner = partner
        self.parts = parts or (self,)

    def fuse_next(self, following: Filter) -> Filter | None:
        if following is not self.partner:
            return None
        return _Joins(self.partner, (*self.parts, following))

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        return next_handler(ex)


def test_fuses_only_neighbours_that_agree() -> None:
    joins = _Joins(_plain)
    assert isinstance(joins, FusibleFilter)
    fused = fuse_adjacent([_other, joins, _plain, _other])
    assert len(fused) == 3 and fused[0] is _other and fused[2] is _other
    assert isinstance(fused[1], _Joins) and fused[1].parts == (joins, _plain)
    # Not its partner, or not right after it: all stay.
    assert fuse_adjacent([joins, _other, _plain]) == [joins, _other, _plain]
    assert fuse_adjacent([_plain, joins]) == [_plain, joins]
    assert fuse_adjacent([]) == []


def test_a_fused_filter_may_fuse_again() -> None:
    joins = _Joins(_plain)
    [fused] = fuse_adjacent([joins, _plain, _plain])
    assert isinstance(fused, _Joins) and fused.parts == (joins, _plain, _plain)
