"""The ingress tells the exchange when the chain has answered (Exchange.done / on_done)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mesh.exchange import Exchange
from mesh.ingress import Ingress

Done = tuple[int, str | None]


def request() -> web.BaseRequest:
    return make_mocked_request("GET", "/api/orders/7", headers={"Host": "gw"})


def recording(done: list[Done]) -> Callable[[Exchange, int, str | None], None]:
    def on_done(ex: Exchange, status: int, error: str | None) -> None:
        assert ex.on_done is None  # called once: cleared before the call
        done.append((status, error))

    return on_done


async def test_on_done_hears_the_status_once_the_chain_has_answered() -> None:
    done: list[Done] = []

    async def chain(ex: Exchange) -> web.StreamResponse:
        ex.on_done = recording(done)
        assert done == []
        return web.Response(status=418)

    response = await Ingress(lambda: chain)(request())
    assert response.status == 418
    assert done == [(418, None)]


async def test_without_on_done_nothing_is_called() -> None:
    seen: list[Exchange] = []

    async def chain(ex: Exchange) -> web.StreamResponse:
        seen.append(ex)
        return web.Response(status=204)

    response = await Ingress(lambda: chain)(request())
    assert response.status == 204 and seen[0].on_done is None


async def test_an_exception_is_a_500_problem_and_on_done_names_it() -> None:
    done: list[Done] = []

    async def chain(ex: Exchange) -> web.StreamResponse:
        ex.on_done = recording(done)
        raise KeyError("missing")

    response = await Ingress(lambda: chain)(request())
    assert isinstance(response, web.Response)
    assert response.status == 500 and response.content_type == "application/problem+json"
    assert done == [(500, "KeyError")]


async def test_a_cancelled_request_still_tells_on_done_and_stays_cancelled() -> None:
    done: list[Done] = []

    async def chain(ex: Exchange) -> web.StreamResponse:
        ex.on_done = recording(done)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Ingress(lambda: chain)(request())
    assert done == [(500, "CancelledError")]
