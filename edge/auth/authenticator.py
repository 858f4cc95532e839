"""The authentication decision: a route's policy and a request's credential → an identity.

No HTTP here: the authenticate filter extracts the credential and renders the
outcome; this decides it, with the verifiers injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from edge.auth.apikey_verifier import ApiKeysUnavailable, ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord
from edge.auth.claims import Claims, TokenVerifier
from edge.auth.credentials import API_KEY_KEY, AUTHORIZATION_KEY, METHOD_OF_KIND, Credential
from edge.auth.errors import AuthError
from edge.auth.identity import Identity, identity_from_api_key, identity_from_claims
from edge.auth.introspection import IntrospectionUnavailable
from edge.auth.issuer_router import IssuerRouter
from edge.auth.jwt_verifier import JwtVerifier
from edge.auth.keys import KeysUnavailable
from edge.auth.policy import RoutePolicy
from edge.object_memo import ObjectMemo

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
        # The local JWT cache's look-up by Authorization value
        # (JwtVerifier.cached_header_lookup), or None.
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
        # Only JwtVerifier's cache (alone or one per provider) guarantees the token
        # shape cached() relies on.
        if isinstance(verifiers.jwt, JwtVerifier | IssuerRouter):
            self._jwt_max_len, self._jwt_claims = verifiers.jwt.cached_header_lookup()
        else:
            self._jwt_max_len, self._jwt_claims = 0, None

    def cached(self, headers: CIMultiDictProxy[str], policy: RoutePolicy) -> Identity | None:
        """The identity of a caller the verifiers already hold a live answer for; never awaits.

        For a request's ``headers``: when this returns an identity or raises
        AuthError, that is exactly what :meth:`authenticate` would do for
        ``presented_credential(headers)``. None means "not decided here": call
        :meth:`authenticate`.

        It decides only for a credential in its plain form: the one credential
        header is ``Authorization: Bearer <secret>`` or ``Authorization: ApiKey
        <secret>`` (that spelling, one space) without any X-API-Key, or one
        ``X-API-Key: <secret>`` without any Authorization; and only when the
        local JWT or API key cache holds a live answer for that secret, on a
        route that takes that kind (not in introspection mode). Each of those
        caches vouches that what it holds passed full verification, so has the
        shape that makes the secret exactly the request's credential: non-empty,
        no space or tab at either end, and for a bearer token b64token syntax
        (see :meth:`edge.auth.jwt_verifier.JwtVerifier.cached`), so
        ``presented_credential`` would return ``Credential(kind, secret)``.
        Everything else (other spellings, several credentials, anything not
        cached) is None.

        The reading of the headers, the cache look-up and the identity are one
        call: this runs for every request of a repeat caller.
        """
        authorizations = headers.getall(AUTHORIZATION_KEY, ())
        if authorizations:
            if len(authorizations) != 1 or API_KEY_KEY in headers:
                return None
            value = authorizations[0]
            # policy.local_jwt: the route takes bearer tokens and verifies them
            # locally (precomputed per policy). The claims cache is keyed by
            # the plain value "Bearer <token>" itself, so the value is looked up
            # as it is: a hit is exactly that form, the token never sliced out.
            claims_of = self._jwt_claims
            if (
                claims_of is not None
                and policy.local_jwt
                and len(value) <= self._jwt_max_len  # longer: never cached, never hashed
            ):
                claims = claims_of(value)
                if claims is not None:
                    identity = self._jwt_identity(id(claims)) or self._from_jwt(claims)
                    if policy.providers is not None and identity.provider not in policy.providers:
                        raise _provider_not_accepted()
                    if policy.roles and not identity.has_any_role(policy.roles):
                        raise _missing_role(policy)
                    return identity
            # A slice and == is about a third of what a str.startswith() call costs.
            if value[:7] != "ApiKey ":
                return None  # a bearer token not cached here, or another scheme
            secret = value[7:]
        else:
            api_keys = headers.getall(API_KEY_KEY, ())
            if len(api_keys) != 1:
                return None
            secret = api_keys[0]
        verifier = self._verifiers.api_keys
        if verifier is None or not policy.api_keys:
            return None
        record = verifier.cached(secret)
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
        if (
            policy.providers is not None
            and identity.method == "jwt"
            and identity.provider not in policy.providers
        ):
            raise _provider_not_accepted()
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


def _provider_not_accepted() -> AuthError:
    # Fixed text: neither the token's issuer nor the provider's name is reflected.
    return AuthError.invalid_token("token issuer not accepted on this route")


def _missing_role(policy: RoutePolicy) -> AuthError:
    return AuthError.insufficient_scope("missing required role", scope=" ".join(policy.roles))
