"""The RFC 7662 introspection request over HTTP.

With aiohttp to a URL, or, for a :class:`edge.auth.service_url.ServiceCall` (the
auth service found in the catalog, the edge with mesh TLS on), through the edge's
own transport, which checks the instance's certificate before the token is sent.
Either way the answer is judged by the same code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp

from edge.auth.http_body import BodyTooLarge, read_bounded
from edge.auth.jwks_http import EndpointSource
from edge.auth.service_url import ServiceCall


def client_basic_authorization(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` value for OAuth client authentication (RFC 6749 §2.3.1).

    Id and secret are form-urlencoded before the Basic encoding, as that section
    requires, so a ``:`` in either cannot shift the split.
    """
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class IntrospectionHttpError(Exception):
    """The endpoint answered with an error status or a body that is not a JSON object."""


class HttpIntrospector:
    """An :data:`edge.auth.introspection.IntrospectionCall` that POSTs to the endpoint.

    Sends ``token`` and ``token_type_hint=access_token`` as a form (RFC 7662
    §2.1), authenticating the edge with HTTP Basic when ``client_id`` is given
    (the endpoint must not answer anonymous callers, §2.1). Redirects are not
    followed; the request is bounded by ``timeout_s`` and the body by
    ``max_body_bytes`` (through the transport, refused past it whatever the
    status). The token is never put in an exception message. aiohttp, transport
    (UpstreamError) and timeout errors propagate as they are. The session is
    borrowed: the caller closes it.
    """

    def __init__(
        self,
        url: EndpointSource,
        session: aiohttp.ClientSession,
        *,
        client_id: str | None = None,
        client_secret: str = "",
        timeout_s: float = 5.0,
        max_body_bytes: int = 64 * 1024,
    ) -> None:
        self._url = url
        self._session = session
        self._headers = {"Accept": "application/json"}
        if client_id:
            self._headers["Authorization"] = client_basic_authorization(client_id, client_secret)
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_body_bytes = max_body_bytes

    async def __call__(self, token: str) -> Mapping[str, Any]:
        form = {"token": token, "token_type_hint": "access_token"}
        if isinstance(self._url, ServiceCall):
            try:
                answer = await self._url(
                    "POST",
                    {**self._headers, "Content-Type": "application/x-www-form-urlencoded"},
                    urlencode(form).encode(),
                    timeout_s=self._timeout_s,
                    max_body_bytes=self._max_body_bytes,
                )
            except BodyTooLarge as exc:
                raise _too_large() from exc
            _check_status(answer.status)
            return _decode(answer.body)
        url = self._url if isinstance(self._url, str) else await self._url()
        async with self._session.post(
            url,
            data=form,
            allow_redirects=False,
            timeout=self._timeout,
            headers=self._headers,
        ) as response:
            _check_status(response.status)
            try:
                body = await read_bounded(response, self._max_body_bytes)
            except BodyTooLarge as exc:
                raise _too_large() from exc
        return _decode(body)


def _check_status(status: int) -> None:
    if status != 200:
        raise IntrospectionHttpError(f"introspection endpoint answered HTTP {status}")


def _too_large() -> IntrospectionHttpError:
    return IntrospectionHttpError("introspection body too large")


def _decode(body: bytes) -> Mapping[str, Any]:
    """The answer as a JSON object; IntrospectionHttpError when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise IntrospectionHttpError("introspection body is not JSON") from exc
    if not isinstance(document, dict):
        raise IntrospectionHttpError("introspection body is not a JSON object")
    return document
