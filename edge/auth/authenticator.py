"""The authentication decision: a route's policy and a request's credential → an identity.

No HTTP here: the authenticate filter extracts the credential and renders the
outcome; this decides it, with the verifiers injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.auth.apikey_verifier import ApiKeysUnavailable, ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord
from edge.auth.claims import Claims, TokenVerifier
from edge.auth.credentials import METHOD_OF_KIND, Credential, CredentialKind
from edge.auth.errors import AuthError
from edge.auth.identity import Identity, identity_from_api_key, identity_from_claims
from edge.auth.introspection import IntrospectionUnavailable
from edge.auth.jwt_verifier import JwtVerifier
from edge.auth.keys import KeysUnavailable
from edge.auth.object_memo import ObjectMemo
from edge.auth.policy import RoutePolicy

UNAVAILABLE = (KeysUnavailable, IntrospectionUnavailable, ApiKeysUnavailable)
"""Exceptions meaning "cannot check now" (answer 503), never "invalid credential"."""

_NOT_ACCEPTED = {
    "bearer": "bearer tokens are not accepted on this route",
    "apikey": "api keys are not accepted on this route",
}


@dataclass(frozen=True, slots=True)
class Verifiers:
    """The configured verifiers; None where the method or mode is not configured."""

    jwt: TokenVerifier | None = None
    introspection: TokenVerifier | None = None
    api_keys: ApiKeyVerifier | None = None


class Authenticator:
    """Decides who the caller is, given what the route requires.

    ``verifiers`` may be swapped at start-up (:meth:`install`); until then every
    credential is "cannot check now".
    """

    def __init__(self, verifiers: Verifiers | None = None) -> None:
        self._verifiers: Verifiers
        # The local JWT cache's look-up (JwtVerifier.cached_lookup), or None.
        self._jwt_max_len = 0
        self._jwt_claims: Callable[[str], Claims | None] | None
        self.install(verifiers or Verifiers())
        # Cached answers come back as the same objects: derive each identity once.
        self._from_jwt: ObjectMemo[Claims, Identity] = ObjectMemo(
            lambda c: identity_from_claims(c, "jwt")
        )
        self._from_introspection: ObjectMemo[Claims, Identity] = ObjectMemo(
            lambda c: identity_from_claims(c, "introspect")
        )
        self._from_api_key: ObjectMemo[ApiKeyRecord, Identity] = ObjectMemo(identity_from_api_key)
        self._jwt_identity = self._from_jwt.known
        self._api_key_identity = self._from_api_key.known

    def install(self, verifiers: Verifiers) -> None:
        """Use these verifiers from now on."""
        self._verifiers = verifiers
        # Only JwtVerifier's cache guarantees the token shape cached() relies on.
        if isinstance(verifiers.jwt, JwtVerifier):
            self._jwt_max_len, self._jwt_claims = verifiers.jwt.cached_lookup()
        else:
            self._jwt_max_len, self._jwt_claims = 0, None

    def cached(self, kind: CredentialKind, secret: str, policy: RoutePolicy) -> Identity | None:
        """The identity of a caller the verifiers already hold a live answer for; never awaits.

        For a secret from :func:`edge.auth.credentials.candidate_credential`:
        when this returns an identity or raises AuthError, that is exactly what
        :meth:`authenticate` would do for ``Credential(kind, secret)``. None
        means "not decided here" (not cached, a method the route does not take,
        introspection mode, verifiers not installed): call :meth:`authenticate`.
        Only the local JWT and API key caches are consulted; each vouches that
        what it holds passed full verification, so has the shape
        ``candidate_credential`` needs for its secret to be the request's
        credential (a bearer token is b64token syntax, no key has blanks).
        """
        # policy.local_jwt / policy.api_keys are "the route takes this kind" (and,
        # for bearer tokens, verifies them locally), precomputed per policy.
        if kind == "bearer":
            claims_of = self._jwt_claims
            if claims_of is None or not policy.local_jwt or len(secret) > self._jwt_max_len:
                return None
            claims = claims_of(secret)  # JwtVerifier.cached(secret), one call layer less
            if claims is None:
                return None
            identity = self._jwt_identity(id(claims)) or self._from_jwt(claims)
        else:
            api_keys = self._verifiers.api_keys
            if api_keys is None or not policy.api_keys:
                return None
            record = api_keys.cached(secret)
            if record is None:
                return None
            identity = self._api_key_identity(id(record)) or self._from_api_key(record)
        if policy.roles and not identity.has_any_role(policy.roles):
            raise _missing_role(policy)
        return identity

    async def authenticate(
        self, credential: Credential | None, policy: RoutePolicy
    ) -> Identity | None:
        """The caller's identity, or None for an anonymous caller the policy lets in.

        Raises AuthError: ``missing_token`` (401, no credential on a required
        route), a refusal without error code (401, a credential kind the route
        does not accept), whatever the verifier says (401 ``invalid_token``),
        ``insufficient_scope`` (403, none of the route's roles). Raises one of
        :data:`UNAVAILABLE` when the credential cannot be checked now.
        Contract: a policy of ``none`` is the caller's to skip; here it is
        treated like ``optional``.
        """
        if credential is None:
            if policy.policy == "required":
                raise AuthError.missing_token()
            return None
        if METHOD_OF_KIND[credential.kind] not in policy.methods:
            raise AuthError(None, _NOT_ACCEPTED[credential.kind])
        identity = await self._identify(credential, policy)
        if policy.roles and not identity.has_any_role(policy.roles):
            raise _missing_role(policy)
        return identity

    async def _identify(self, credential: Credential, policy: RoutePolicy) -> Identity:
        v = self._verifiers
        if credential.kind == "apikey":
            if v.api_keys is None:
                raise ApiKeysUnavailable("api keys are not ready")
            return self._from_api_key(await v.api_keys.verify(credential.secret))
        if policy.mode == "introspect":
            if v.introspection is None:
                raise IntrospectionUnavailable("introspection is not ready")
            return self._from_introspection(await v.introspection.verify(credential.secret))
        if v.jwt is None:
            raise KeysUnavailable("JWT verification is not ready")
        return self._from_jwt(await v.jwt.verify(credential.secret))


def _missing_role(policy: RoutePolicy) -> AuthError:
    return AuthError.insufficient_scope("missing required role", scope=" ".join(policy.roles))
