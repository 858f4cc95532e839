"""Fetching the JWKS over HTTP with aiohttp, for :class:`edge.auth.jwks.JwksCache`.

The URL is either fixed or resolved on every fetch by an async callable, which
is how the edge finds the auth service through Consul without this module
knowing about Consul.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp

from edge.auth.http_body import BodyTooLarge, read_bounded
from edge.auth.jwks import JwksDocument

UrlSource = str | Callable[[], Awaitable[str]]
"""A fixed URL, or an async callable returning the URL to use for this fetch."""


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
    max_age: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            value = value.strip().strip('"')
            if not (value.isascii() and value.isdigit()):
                return None
            max_age = float(value)
    if max_age is None:
        return None
    if age is not None and age.strip().isascii() and age.strip().isdigit():
        max_age = max(0.0, max_age - float(age.strip()))
    return max_age


class HttpJwksFetcher:
    """A :data:`edge.auth.jwks.JwksFetch` that GETs the JWKS with an aiohttp session.

    Redirects are not followed (the key set's location is configuration, not
    something a response may change), bodies over ``max_body_bytes`` are
    refused, and the whole request is bounded by ``timeout_s``. Raises
    JwksFetchError for a non-200 status, an oversized body or invalid JSON;
    aiohttp and timeout errors propagate as they are. The session is borrowed:
    the caller closes it.
    """

    def __init__(
        self,
        url: UrlSource,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 5.0,
        max_body_bytes: int = 256 * 1024,
    ) -> None:
        self._url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_body_bytes = max_body_bytes

    async def __call__(self) -> JwksDocument:
        url = self._url if isinstance(self._url, str) else await self._url()
        async with self._session.get(
            url,
            allow_redirects=False,
            timeout=self._timeout,
            headers={"Accept": "application/jwk-set+json, application/json"},
        ) as response:
            if response.status != 200:
                raise JwksFetchError(f"JWKS endpoint answered HTTP {response.status}")
            try:
                body = await read_bounded(response, self._max_body_bytes)
            except BodyTooLarge as exc:
                raise JwksFetchError("JWKS body too large") from exc
            try:
                document = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise JwksFetchError("JWKS body is not JSON") from exc
            max_age = parse_max_age(
                response.headers.get("Cache-Control"), response.headers.get("Age")
            )
        return JwksDocument(body=document, max_age_s=max_age)
