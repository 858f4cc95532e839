"""Local JWT verification for several providers: the token's ``iss`` picks the verifier.

Each provider has its own :class:`edge.auth.jwt_verifier.JwtVerifier` (its own
key set, audience, algorithms, leeway and verified-claims cache). The router
reads ``iss`` from the payload without trusting it
(:func:`edge.auth.unverified_issuer.unverified_issuer`) only to choose one of
them; that verifier then does the whole verification, including ``iss`` equal
to its provider's issuer. A token signed with provider A's key but claiming B's
issuer goes to B and fails there (unknown kid or bad signature).

Cache separation: a token is only ever cached by the verifier that verified
it in full, and since issuers are distinct and each verifier requires its own
``iss``, no token can be in two caches; every Claims carries the name of the
provider that verified it (:attr:`edge.auth.claims.Claims.provider`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edge.auth.claims import Claims
from edge.auth.errors import AuthError
from edge.auth.jwt_verifier import BEARER_PREFIX, JwtVerifier, VerifierStats
from edge.auth.unverified_issuer import unverified_issuer


class IssuerRouter:
    """A :class:`edge.auth.claims.TokenVerifier` over several providers' JwtVerifiers.

    ``verifiers`` maps each provider's issuer to its verifier; it must not be
    empty. ``max_token_bytes`` is checked before anything is decoded, as each
    verifier does (use the same value).
    """

    def __init__(self, verifiers: Mapping[str, JwtVerifier], max_token_bytes: int) -> None:
        if not verifiers:
            raise ValueError("at least one verifier is required")
        self._by_issuer = dict(verifiers)
        self._max_token_bytes = max_token_bytes
        self._refused = 0
        self._lookup = self._header_lookup()

    async def verify(self, token: str) -> Claims:
        """The claims of a valid token, verified by the provider its ``iss`` names.

        Raises AuthError (401 ``invalid_token``): ``token too large``,
        ``malformed token``, ``missing iss``, ``unknown issuer`` (no provider has
        that issuer), or whatever the chosen verifier raises (see
        :meth:`edge.auth.jwt_verifier.JwtVerifier.verify`); and
        :class:`edge.auth.keys.KeysUnavailable` when that provider's keys cannot
        be had. Never a description holding any part of the token.
        """
        if len(token) > self._max_token_bytes:
            self._refused += 1
            raise AuthError.invalid_token("token too large")
        try:
            verifier = self._by_issuer.get(unverified_issuer(token))
        except AuthError:
            self._refused += 1
            raise
        if verifier is None:
            self._refused += 1
            raise AuthError.invalid_token("unknown issuer")
        return await verifier.verify(token)

    def cached(self, token: str) -> Claims | None:
        """The claims a provider's cache holds for ``token``, else None; never awaits.

        Same contract as :meth:`edge.auth.jwt_verifier.JwtVerifier.cached`.
        """
        if len(token) > self._max_token_bytes:
            return None
        return self._lookup[1](BEARER_PREFIX + token)

    def cached_header_lookup(self) -> tuple[int, Callable[[str], Claims | None]]:
        """:meth:`edge.auth.jwt_verifier.JwtVerifier.cached_header_lookup` over every
        provider: ``get(value)`` asks each provider's cache in turn. At most one
        can hold the token (see the module docstring), so the order is irrelevant.
        """
        return self._lookup

    def _header_lookup(self) -> tuple[int, Callable[[str], Claims | None]]:
        lookups = [v.cached_header_lookup() for v in self._by_issuer.values()]
        max_len = min(n for n, _ in lookups)
        gets = tuple(get for _, get in lookups)
        if len(gets) == 1:
            return max_len, gets[0]

        def get(value: str) -> Claims | None:
            for one in gets:
                claims = one(value)
                if claims is not None:
                    return claims
            return None

        return max_len, get

    def clear_cache(self) -> None:
        """Forget every cached verification of every provider."""
        for verifier in self._by_issuer.values():
            verifier.clear_cache()

    def stats(self) -> VerifierStats:
        """Counters of every provider added up, plus the tokens refused before any
        provider was chosen (too large, malformed, unknown issuer)."""
        each = [v.stats() for v in self._by_issuer.values()]
        return VerifierStats(
            cache_hits=sum(s.cache_hits for s in each),
            verified=sum(s.verified for s in each),
            refused=self._refused + sum(s.refused for s in each),
            cached_entries=sum(s.cached_entries for s in each),
        )
