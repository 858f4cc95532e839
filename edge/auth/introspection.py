"""Token verification by asking the auth service (OAuth 2.0 Token Introspection, RFC 7662).

The HTTP call is injected (:data:`IntrospectionCall`); the aiohttp one is in
:mod:`edge.auth.introspection_http`. Answers are cached by SHA-256 of the token:
active ones until the token's ``exp`` or ``max_ttl_s``, whichever is sooner
(``max_ttl_s`` bounds how long a revocation goes unnoticed), inactive ones for
``negative_ttl_s`` so a client retrying a dead token does not hammer the auth
service. Concurrent requests with the same uncached token share one call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge.auth.claim_checks import check_audience, check_issuer
from edge.auth.claims import Claims, claims_from_payload, numeric_date
from edge.auth.errors import AuthError
from edge.auth.jwt_verifier import DEFAULT_MAX_TOKEN_BYTES
from edge.auth.token_cache import TokenCache, token_digest

IntrospectionCall = Callable[[str], Awaitable[Mapping[str, Any]]]
"""Sends one token to the introspection endpoint and returns the decoded JSON answer.

Raises any exception when no answer could be had (network, status, decoding).
"""


class IntrospectionUnavailable(Exception):
    """The introspection endpoint gave no usable answer; the filter should answer 503."""


@dataclass(frozen=True, slots=True)
class IntrospectionSettings:
    """Settings of introspection mode, validated on construction (ValueError).

    - ``issuer`` / ``audience``: when set, the answer must carry them and they
      are compared exactly (``issuer mismatch`` / ``audience mismatch``).
    - ``max_ttl_s``: longest an active answer is reused (default 300 s).
    - ``negative_ttl_s``: how long an inactive answer is reused (default 5 s).
    - ``cache_max_entries``: bound of the answer LRU (default 10,000).
    - ``max_token_bytes``: longer tokens are refused without a call (default 8 KiB).
    """

    issuer: str | None = None
    audience: str | None = None
    max_ttl_s: float = 300.0
    negative_ttl_s: float = 5.0
    cache_max_entries: int = 10_000
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES

    def __post_init__(self) -> None:
        if self.max_ttl_s < 0 or self.negative_ttl_s < 0:
            raise ValueError("cache lifetimes must be non-negative")
        if self.cache_max_entries < 1:
            raise ValueError("cache_max_entries must be at least 1")
        if self.max_token_bytes < 1:
            raise ValueError("max_token_bytes must be positive")


@dataclass(frozen=True, slots=True)
class _Refusal:
    description: str


_Answer = Claims | _Refusal


@dataclass(frozen=True, slots=True)
class IntrospectionStats:
    """Counters for metrics: endpoint calls, failed calls, cache hits."""

    calls: int
    failures: int
    cache_hits: int
    cached_entries: int


class IntrospectionVerifier:
    """Verifies opaque or JWT bearer tokens by introspection; a TokenVerifier."""

    def __init__(
        self,
        settings: IntrospectionSettings,
        introspect: IntrospectionCall,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._introspect = introspect
        self._clock = clock
        self._cache: TokenCache[_Answer] = TokenCache(settings.cache_max_entries, clock)
        self._calls = 0
        self._failures = 0

    async def verify(self, token: str) -> Claims:
        """Return the claims of an active token.

        Raises AuthError (401 invalid_token): ``token too large``, ``token
        inactive``, ``token expired``, ``invalid exp``, ``missing iss``,
        ``issuer mismatch``, ``missing aud``, ``audience mismatch``, ``missing
        sub`` (neither sub nor client_id), ``invalid <claim>``. Raises
        IntrospectionUnavailable when the endpoint gave no usable answer (not
        cached: the next request asks again).
        """
        if len(token) > self._settings.max_token_bytes:
            raise AuthError.invalid_token("token too large")
        answer = await self._cache.lookup(token_digest(token), lambda: self._ask(token))
        if isinstance(answer, _Refusal):
            raise AuthError.invalid_token(answer.description)
        return answer

    def stats(self) -> IntrospectionStats:
        """Counters since construction."""
        return IntrospectionStats(
            calls=self._calls,
            failures=self._failures,
            cache_hits=self._cache.hits,
            cached_entries=len(self._cache),
        )

    async def _ask(self, token: str) -> tuple[_Answer, float]:
        self._calls += 1
        try:
            response = await self._introspect(token)
        except Exception as exc:  # any transport failure is "no answer", never "inactive"
            self._failures += 1
            reason = f"introspection failed: {type(exc).__name__}"
            raise IntrospectionUnavailable(reason) from exc
        if not isinstance(response, Mapping) or not isinstance(response.get("active"), bool):
            self._failures += 1
            raise IntrospectionUnavailable("introspection answer has no boolean 'active'")
        return self._judge(response, self._clock())

    def _judge(self, response: Mapping[str, Any], now: float) -> tuple[_Answer, float]:
        """The answer for one RFC 7662 response, and until when it may be reused."""
        negative_until = now + self._settings.negative_ttl_s
        if response["active"] is not True:
            return _Refusal("token inactive"), negative_until
        try:
            exp = numeric_date(response, "exp")
            if exp is not None and now >= exp:
                raise AuthError.invalid_token("token expired")
            if self._settings.issuer is not None:
                check_issuer(response, self._settings.issuer)
            if self._settings.audience is not None:
                check_audience(response, self._settings.audience)
            claims = claims_from_payload(response, subject_fallback_claim="client_id")
        except AuthError as exc:
            return _Refusal(exc.description), negative_until
        positive_until = now + self._settings.max_ttl_s
        if exp is not None:
            positive_until = min(positive_until, exp)
        return claims, positive_until
