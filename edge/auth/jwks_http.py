"""Fetching the JWKS over HTTP, for :class:`edge.auth.jwks.JwksCache`.

The key set is fetched from an auth service endpoint with
:func:`edge.auth.endpoint.call_endpoint` (a URL with aiohttp, or a service in
the catalog through the edge's transport), and its answer judged here: status,
body size, JSON and max-age.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp

from edge.auth.endpoint import EndpointSource, call_endpoint
from edge.auth.http_body import BodyTooLarge
from edge.auth.jwks import JwksDocument
from mesh.http.cache_control import digits, directives

_ACCEPT = {"Accept": "application/jwk-set+json, application/json"}


class JwksFetchError(Exception):
    """The JWKS could not be fetched or decoded; the message says why (no body echoed)."""


def parse_max_age(cache_control: str | None, age: str | None = None) -> float | None:
    """Freshness lifetime from ``Cache-Control`` (and ``Age``) in seconds.

    ``no-store`` / ``no-cache`` give 0 (refresh whenever the cooldown allows);
    ``max-age=N`` gives N minus a valid ``Age``, never below 0; anything else
    (absent, malformed) gives None, meaning "use the configured default".
    """
    if not cache_control:
        return None
    found = directives([cache_control])
    if "no-store" in found or "no-cache" in found:
        return 0.0
    value = found.get("max-age")
    if value is None or not digits(value):
        return None
    max_age = float(value)
    if age is not None and digits(age.strip()):
        max_age = max(0.0, max_age - float(age.strip()))
    return max_age


class HttpJwksFetcher:
    """A :data:`edge.auth.jwks.JwksFetch` that GETs the JWKS.

    From a URL with an aiohttp session, or through the edge's transport for a
    :class:`edge.auth.service_url.ServiceCall`. Redirects are not followed (the
    key set's location is configuration, not something a response may change),
    bodies over ``max_body_bytes`` are refused, and the whole request is bounded
    by ``timeout_s``. Raises JwksFetchError for a non-200 status, an oversized
    body or invalid JSON (through the transport, a body over the limit is refused
    whatever the status); aiohttp, transport (UpstreamError) and timeout errors
    propagate as they are. The session is borrowed: the caller closes it.
    """

    def __init__(
        self,
        url: EndpointSource,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 5.0,
        max_body_bytes: int = 256 * 1024,
    ) -> None:
        self._url = url
        self._session = session
        self._timeout_s = timeout_s
        self._max_body_bytes = max_body_bytes

    async def __call__(self) -> JwksDocument:
        try:
            answer = await call_endpoint(
                self._url,
                self._session,
                "GET",
                _ACCEPT,
                timeout_s=self._timeout_s,
                max_body_bytes=self._max_body_bytes,
            )
        except BodyTooLarge as exc:
            raise JwksFetchError("JWKS body too large") from exc
        if answer.status != 200:
            raise JwksFetchError(f"JWKS endpoint answered HTTP {answer.status}")
        return _document(answer.body, answer.headers)


def _document(body: bytes, headers: Mapping[str, str]) -> JwksDocument:
    """The decoded key set and its max-age; JwksFetchError when the body is not JSON."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise JwksFetchError("JWKS body is not JSON") from exc
    max_age = parse_max_age(headers.get("Cache-Control"), headers.get("Age"))
    return JwksDocument(body=document, max_age_s=max_age)
