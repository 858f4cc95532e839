"""An exchange on a mocked ``GET /``, with the upstream headers a test gives."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from mesh.exchange import Exchange


def exchange(upstream: list[tuple[str, str]]) -> Exchange:
    """``upstream`` as the headers to be sent on (several of one name allowed)."""
    return Exchange(
        request=make_mocked_request("GET", "/"),
        path="/",
        query="",
        request_id="rid",
        client_ip="127.0.0.1",
        upstream_headers=CIMultiDict(upstream),
    )
