"""The RFC 7662 introspection request over HTTP.

Sent with :func:`edge.auth.endpoint.call_endpoint`: with aiohttp to a URL, or,
for the auth service found in the catalog with the edge's mesh TLS on, through
the edge's own transport, which checks the instance's certificate before the
token is sent. The answer is judged here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp

from edge.auth.endpoint import EndpointSource, call_endpoint
from edge.auth.http_body import BodyTooLarge


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
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if client_id:
            self._headers["Authorization"] = client_basic_authorization(client_id, client_secret)
        self._timeout_s = timeout_s
        self._max_body_bytes = max_body_bytes

    async def __call__(self, token: str) -> Mapping[str, Any]:
        form = {"token": token, "token_type_hint": "access_token"}
        try:
            answer = await call_endpoint(
                self._url,
                self._session,
                "POST",
                self._headers,
                urlencode(form).encode(),
                timeout_s=self._timeout_s,
                max_body_bytes=self._max_body_bytes,
            )
        except BodyTooLarge as exc:
            raise IntrospectionHttpError("introspection body too large") from exc
        if answer.status != 200:
            raise IntrospectionHttpError(f"introspection endpoint answered HTTP {answer.status}")
        return _decode(answer.body)


def _decode(body: bytes) -> Mapping[str, Any]:
    """The answer as a JSON object; IntrospectionHttpError when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise IntrospectionHttpError("introspection body is not JSON") from exc
    if not isinstance(document, dict):
        raise IntrospectionHttpError("introspection body is not a JSON object")
    return document
