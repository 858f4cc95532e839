"""The plain-HTTP listener of a TLS edge: every request gets a 308 to its HTTPS URL.

308 (not 301) so that a POST stays a POST. The host comes from the request's
``Host`` (its port replaced by the HTTPS port); a missing or malformed Host
gets a 400, so the Location can never carry injected characters.
"""

from __future__ import annotations

from aiohttp import web

from edge.direct.location import location, split_authority
from mesh.http import request_id
from mesh.http.path import PathRejected, normalise_path, split_target
from mesh.http.problem import problem_response


def https_location(host: str, target: str, https_port: int) -> str | None:
    """The redirect target for ``Host: host`` and ``target``; None if host is unusable."""
    authority = split_authority(host)
    if authority is None:
        return None
    return location("https", authority[0], https_port, target)


class HttpsRedirect:
    """aiohttp low-level handler answering 308 to the HTTPS URL of each request."""

    def __init__(self, https_port: int) -> None:
        self._port = https_port

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        rid = request_id.accept_or_generate(request.headers.get(request_id.HEADER))
        try:
            raw_path, query = split_target(request.raw_path)
            target = normalise_path(raw_path) + (f"?{query}" if query else "")
        except PathRejected as exc:
            return problem_response(400, "Bad request path", exc.reason, rid, slug="bad-path")
        url = https_location(request.headers.get("Host", ""), target, self._port)
        if url is None:
            return problem_response(
                400, "Bad request", "a valid Host header is required", rid, slug="bad-host"
            )
        return web.Response(
            status=308,
            headers={"Location": url, request_id.HEADER: rid, "Connection": "close"},
        )
