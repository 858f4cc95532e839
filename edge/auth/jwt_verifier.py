"""Local verification of JWT access tokens against keys from a key source.

The order of checks is the security argument, cheapest and most hostile first:

1. size, before anything is hashed or decoded (``token too large``);
2. the claims cache, by the token's plain Authorization value ``Bearer
   <token>``: a repeat caller costs a dict look-up and no signature check
   (:meth:`JwtVerifier.cached` is that look-up alone);
3. the header, parsed strictly by :mod:`edge.auth.jws_header` (alg allow-list,
   ``none`` refused, kid shape, key-locating headers refused or ignored);
4. the key, by kid only, from the key source (``unknown kid``), and the
   algorithm must be one that key allows (``alg does not match key``);
5. the signature, by PyJWT with exactly that one algorithm and that key;
6. the registered claims at the injected clock (:mod:`edge.auth.claim_checks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from edge.auth.claim_checks import MAX_LEEWAY_S, check_registered_claims
from edge.auth.claims import Claims, claims_from_payload
from edge.auth.errors import AuthError
from edge.auth.jws_header import DEFAULT_KID_PATTERN, parse_jws_header
from edge.auth.keys import SUPPORTED_ALGORITHMS, KeySource
from edge.auth.token_cache import TokenCache
from mesh.config.safe_regex import RegexSyntaxError, compile_safe_regex

DEFAULT_ALGORITHMS = frozenset({"ES256", "RS256", "EdDSA"})
"""The edge accepts these unless configured otherwise: asymmetric only, one per key type."""

DEFAULT_MAX_TOKEN_BYTES = 8 * 1024

BEARER_PREFIX = "Bearer "
"""The claims cache's keys are this and the token: each token's plain
``Authorization`` value (RFC 6750 §2.1, the scheme as spelled there, one space)."""

# PyJWT checks the signature only: claims are checked by claim_checks at the
# injected clock (PyJWT would read the wall clock and coerce "exp": "123").
_SIGNATURE_ONLY: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """Settings of local JWT verification, validated on construction (ValueError).

    - ``issuer`` / ``audience``: required, compared exactly with ``iss`` / ``aud``.
    - ``algorithms``: the allow-list; only asymmetric algorithms may be listed
      (:data:`edge.auth.keys.SUPPORTED_ALGORITHMS`), so HS* and none cannot be
      enabled by configuration. Default ES256, RS256, EdDSA.
    - ``leeway_s``: clock-skew allowance for exp/nbf/iat, 0 to 60 s (default 30).
    - ``max_token_bytes``: longer tokens are refused before decoding (default 8 KiB).
    - ``cache_max_entries``: bound of the verified-claims LRU (default 10,000).
    - ``kid_pattern``: a kid must fully match it (default ``[A-Za-z0-9_-]{1,64}``);
      RE2 syntax, matched in linear time (:mod:`mesh.config.safe_regex`), since the
      kid is the client's.
    - ``refuse_key_locating_headers``: refuse tokens carrying jku/x5u/jwk/x5c
      (default True); when False they are ignored. Never used to find a key.
    - ``provider``: the name of the configured provider these settings are
      (``auth.providers``), stamped on every Claims this verifier returns
      (:attr:`edge.auth.claims.Claims.provider`); default None.
    """

    issuer: str
    audience: str
    algorithms: frozenset[str] = DEFAULT_ALGORITHMS
    leeway_s: float = 30.0
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    cache_max_entries: int = 10_000
    kid_pattern: str = DEFAULT_KID_PATTERN
    refuse_key_locating_headers: bool = True
    provider: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer is required")
        if not self.audience:
            raise ValueError("audience is required")
        algorithms: Iterable[str] = self.algorithms
        object.__setattr__(self, "algorithms", frozenset(algorithms))
        if not self.algorithms:
            raise ValueError("algorithms must not be empty")
        unsupported = self.algorithms - SUPPORTED_ALGORITHMS
        if unsupported:
            raise ValueError(
                f"algorithms not allowed (asymmetric only): {', '.join(sorted(unsupported))}"
            )
        if not 0 <= self.leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"leeway_s must be between 0 and {MAX_LEEWAY_S:g} seconds")
        if self.max_token_bytes < 1:
            raise ValueError("max_token_bytes must be positive")
        if self.cache_max_entries < 1:
            raise ValueError("cache_max_entries must be at least 1")
        try:
            compile_safe_regex(self.kid_pattern)
        except RegexSyntaxError as exc:
            raise ValueError(f"kid_pattern is not a valid regular expression: {exc}") from None


@dataclass(frozen=True, slots=True)
class VerifierStats:
    """Counters for metrics: cache hits, full verifications that succeeded, refusals."""

    cache_hits: int
    verified: int
    refused: int
    cached_entries: int


class JwtVerifier:
    """Verifies bearer JWTs; a :class:`edge.auth.claims.TokenVerifier`.

    ``clock`` returns Unix time in seconds and is the only time source, for the
    claims checks and the cache alike.

    The verified-claims cache is keyed by the token text itself, not a digest
    of it, behind :data:`BEARER_PREFIX`: the key of a token ``t`` is ``"Bearer
    " + t``, exactly the plain ``Authorization`` value that presents it, so the
    authenticator looks the request's header value up as it is, without
    slicing the token out of it (:meth:`cached_header_lookup`). A hit is one
    dict look-up (the str hash, then a comparison of the whole text against
    the stored key, so a token differing in one character is a miss: as exact
    as comparing digests). It only ever holds tokens that passed every check
    below, each until its ``exp`` and at most ``cache_max_entries`` of them
    (LRU); since the size check comes first, each is at most
    ``max_token_bytes`` characters of ASCII (one byte each), so the keys take
    at most ``cache_max_entries * (max_token_bytes + 7)`` bytes plus about 50
    bytes of object header each: 80 MiB with the defaults in the worst case of
    8 KiB tokens, a few MiB for typical sub-kilobyte ones. The price: unlike
    a digest, the keys are the bearer tokens themselves, so a dump of the
    process's memory holds every cached token (usable until its ``exp``).
    """

    def __init__(
        self, settings: JwtSettings, key_source: KeySource, clock: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._key_source = key_source
        self._clock = clock
        self._kid_pattern = compile_safe_regex(settings.kid_pattern)
        self._cache: TokenCache[Claims] = TokenCache(settings.cache_max_entries, clock)
        # Read on every request (cached()): one attribute rather than two.
        self._max_token_bytes = settings.max_token_bytes
        self._verified = 0
        self._refused = 0

    async def verify(self, token: str) -> Claims:
        """Return the claims of a valid token.

        Raises AuthError (401, ``invalid_token``) with one specific description:
        ``token too large``, ``malformed token``, ``key-locating header not
        allowed``, ``unsupported critical header``, ``unsupported header
        parameter``, ``missing alg``, ``alg not allowed``, ``missing kid``,
        ``invalid kid``, ``unknown kid``, ``alg does not match key``,
        ``signature invalid``, ``missing exp``, ``invalid exp`` (and nbf/iat),
        ``token expired``, ``token not yet valid``, ``token issued in the
        future``, ``missing iss``, ``issuer mismatch``, ``missing aud``,
        ``invalid aud``, ``audience mismatch``, ``missing sub``, ``invalid
        <claim>``. Raises :class:`edge.auth.keys.KeysUnavailable` (answer 503)
        when no key set can be obtained. Valid claims are cached until ``exp``.
        """
        # Checked on the str length: a non-ASCII token is refused as malformed
        # later, so no multi-byte trick gets more than max_token_bytes chars in.
        if len(token) > self._settings.max_token_bytes:
            self._refused += 1
            raise AuthError.invalid_token("token too large")
        key = BEARER_PREFIX + token
        cached = self._cache.get(key)
        if cached is not None:
            return cached  # counted in the cache's hits
        try:
            claims = await self._verify_uncached(token)
        except AuthError:
            self._refused += 1
            raise
        self._verified += 1
        if claims.expires_at is not None:
            self._cache.put(key, claims, claims.expires_at)
        return claims

    def cached(self, token: str) -> Claims | None:
        """The claims :meth:`verify` would return from its cache, else None; never awaits.

        None means "not known valid here" (never seen, refused, evicted or
        expired): ask :meth:`verify`, which decides. A hit counts as one.
        Guarantee: every token this answers for once passed :meth:`verify` in
        full, so it is a compact JWS of three base64url segments (``[A-Za-z0-9_-]``
        and two dots): RFC 6750 b64token syntax, without any space or tab.
        """
        if len(token) > self._max_token_bytes:
            return None  # never cached; and never hashed, as in verify
        # TokenCache.get counts the hit: stats() reads the cache's own counter.
        return self._cache.get(BEARER_PREFIX + token)

    def cached_header_lookup(self) -> tuple[int, Callable[[str], Claims | None]]:
        """:meth:`cached` for a request's ``Authorization`` value as it is, for a
        caller that asks on every request.

        Returns ``(max_len, get)``: for a ``value`` of at most ``max_len``
        characters, ``get(value)`` is exactly ``cached(t)`` when ``value`` is
        ``"Bearer " + t`` (same answer, same hit counted), and None for any
        other value (another scheme or spelling of it, no token): the cache's
        keys are exactly those values for the tokens it holds. A longer value
        holds a token that is never cached (answer None without calling
        ``get``, which would hash it). Saves slicing the token out of the
        header and a Python call layer per request; both parts stay valid for
        the verifier's life (:meth:`clear_cache` empties, never replaces, the
        cache).
        """
        return self._max_token_bytes + len(BEARER_PREFIX), self._cache.get

    def clear_cache(self) -> None:
        """Forget every cached verification (e.g. after revoking a key)."""
        self._cache.clear()

    def stats(self) -> VerifierStats:
        """Counters since construction."""
        return VerifierStats(
            cache_hits=self._cache.hits,
            verified=self._verified,
            refused=self._refused,
            cached_entries=len(self._cache),
        )

    async def _verify_uncached(self, token: str) -> Claims:
        settings = self._settings
        header = parse_jws_header(
            token,
            allowed_algorithms=settings.algorithms,
            kid_pattern=self._kid_pattern,
            refuse_key_locating_headers=settings.refuse_key_locating_headers,
        )
        key = await self._key_source.get_key(header.kid)
        if key is None:
            raise AuthError.invalid_token("unknown kid")
        # The key decides which algorithms it can verify; the header only picks
        # among those. This is what stops HS256-with-the-public-key for good.
        prepared = key.for_algorithm(header.alg)
        if prepared is None:
            raise AuthError.invalid_token("alg does not match key")

        try:
            payload: dict[str, Any] = jwt.decode(
                token, key=prepared, algorithms=[header.alg], options=_SIGNATURE_ONLY
            )
        except jwt.InvalidSignatureError as exc:
            raise AuthError.invalid_token("signature invalid") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthError.invalid_token("alg not allowed") from exc
        except jwt.DecodeError as exc:
            raise AuthError.invalid_token("malformed token") from exc
        except jwt.PyJWTError as exc:
            raise AuthError.invalid_token("signature invalid") from exc

        check_registered_claims(
            payload,
            issuer=settings.issuer,
            audience=settings.audience,
            now=self._clock(),
            leeway_s=settings.leeway_s,
        )
        return claims_from_payload(payload, provider=settings.provider)
