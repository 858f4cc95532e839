"""One request to an auth service endpoint (JWKS, introspection), wherever it is.

An endpoint is a URL, fixed or resolved on every call by an async callable (how
the edge finds the auth service through Consul without these clients knowing
about Consul), fetched with aiohttp; or a :class:`edge.auth.service_url.ServiceCall`
(the auth service found in the catalog, the edge with mesh TLS on), called
through the edge's own transport, which checks the instance's certificate before
anything is sent. :func:`call_endpoint` gives both one contract, so the JWKS
and introspection clients judge every answer with the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import aiohttp

from edge.auth.http_body import read_bounded
from edge.auth.service_fetch import InstanceAnswer
from edge.auth.service_url import ServiceCall

UrlSource = str | Callable[[], Awaitable[str]]
"""A fixed URL, or an async callable returning the URL to use for this call."""

EndpointSource = UrlSource | ServiceCall
"""Where an auth service endpoint is: a URL (fetched with aiohttp), or a service in
the catalog called through the edge's transport."""


async def call_endpoint(
    source: EndpointSource,
    session: aiohttp.ClientSession,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    *,
    timeout_s: float,
    max_body_bytes: int,
) -> InstanceAnswer:
    """Send one request to ``source`` and return its answer.

    Redirects are not followed (an endpoint's location is configuration, not
    something a response may change); ``timeout_s`` bounds the whole exchange;
    a body past ``max_body_bytes`` raises
    :class:`edge.auth.http_body.BodyTooLarge`. With aiohttp the body of an
    answer other than 200 is not read (it is returned empty); through the
    transport it is read whatever the status, so that the connection can go back
    to the pool. aiohttp, transport (UpstreamError) and timeout errors propagate
    as they are. The session is borrowed: the caller closes it.
    """
    if isinstance(source, ServiceCall):
        return await source(
            method, headers, body, timeout_s=timeout_s, max_body_bytes=max_body_bytes
        )
    url = source if isinstance(source, str) else await source()
    async with session.request(
        method,
        url,
        data=body,
        headers=headers,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as response:
        content = await read_bounded(response, max_body_bytes) if response.status == 200 else b""
        return InstanceAnswer(response.status, response.headers, content)
