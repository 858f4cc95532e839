"""The end of the edge's chain: the edge's own answers for direct routes, the proxy for the
rest (on mocked requests; the real edge is in tests/integration/test_direct_routes.py)."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from edge.direct.actions import DirectAction, DirectResponse, Redirect
from edge.direct.terminal import DirectTerminal
from edge.routes import make_route
from mesh.exchange import Exchange


def _exchange(target: str, headers: dict[str, str], direct: DirectAction | None) -> Exchange:
    path, _, query = target.partition("?")
    ex = Exchange(
        request=make_mocked_request("GET", target, headers=headers),
        path=path,
        query=query,
        request_id="rid",
        client_ip="127.0.0.1",
        upstream_headers=CIMultiDict(),
    )
    if direct is not None:
        ex.attrs["route"] = make_route(prefix="/old", service=None, source="config", direct=direct)
    return ex


async def _proxied(ex: Exchange) -> web.StreamResponse:
    return web.Response(status=299, text="proxied")


async def test_a_proxied_route_goes_to_the_proxy() -> None:
    terminal = DirectTerminal(_proxied)
    response = await terminal(_exchange("/api", {"Host": "a.example"}, None))
    assert response.status == 299
    ex = _exchange("/api", {}, None)
    ex.attrs["route"] = make_route(prefix="/api", service="api", source="config")
    assert (await terminal(ex)).status == 299


async def test_a_redirect() -> None:
    terminal = DirectTerminal(_proxied)
    ex = _exchange("/old/7?q=1", {"Host": "a.example:8080"}, Redirect(prefix_rewrite="/new"))
    response = await terminal(ex)
    assert (response.status, response.headers["Location"]) == (
        301,
        "http://a.example:8080/new/7?q=1",
    )


async def test_a_redirect_without_a_host() -> None:
    response = await DirectTerminal(_proxied)(_exchange("/old", {}, Redirect()))
    assert isinstance(response, web.Response) and isinstance(response.body, bytes)
    assert response.status == 400
    assert json.loads(response.body)["type"].endswith("/bad-host")


async def test_a_direct_response() -> None:
    action = DirectResponse(503, b"<h1>later</h1>", "text/html")
    response = await DirectTerminal(_proxied)(_exchange("/old", {}, action))
    assert isinstance(response, web.Response)
    assert (response.status, response.body, response.headers["Content-Type"]) == (
        503,
        b"<h1>later</h1>",
        "text/html",
    )
    empty = await DirectTerminal(_proxied)(_exchange("/old", {}, DirectResponse(204)))
    assert empty.status == 204 and "Content-Type" not in empty.headers
