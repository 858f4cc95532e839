"""The authentication decision, table-driven, with fake verifiers."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edge.auth.apikey_verifier import ApiKeysUnavailable, ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord, generate_key
from edge.auth.authenticator import Authenticator, Verifiers
from edge.auth.claims import Claims
from edge.auth.credentials import Credential, presented_credential
from edge.auth.errors import AuthError
from edge.auth.jwt_verifier import JwtSettings, JwtVerifier
from edge.auth.keys import KeysUnavailable
from edge.auth.policy import RoutePolicy
from tests.edge.auth.conftest import AUDIENCE, ISSUER, CountingKeySource, FakeClock, TokenFactory

ALICE = Claims(subject="alice", roles=("user",), provider="customers")
BOB = Claims(subject="bob", roles=("admin",))
KEY, KEY_ID = generate_key()


class Tokens:
    def __init__(self, method: str) -> None:
        self.method = method

    async def verify(self, token: str) -> Claims:
        if token == "alice":
            return ALICE
        if token == "bob":
            return BOB
        raise AuthError.invalid_token("signature invalid")


async def lookup(key: str) -> ApiKeyRecord | None:
    return ApiKeyRecord(KEY_ID, "acme", ("partner",), "gold", 0) if key == KEY else None


def authenticator() -> Authenticator:
    return Authenticator(
        Verifiers(
            jwt=Tokens("jwt"),
            introspection=Tokens("introspect"),
            api_keys=ApiKeyVerifier(lookup, FakeClock()),
        )
    )


def policy(
    policy: str = "required",
    methods: tuple[str, ...] = ("jwt", "apikey"),
    roles: tuple[str, ...] = (),
    mode: str = "jwt",
    providers: tuple[str, ...] | None = None,
) -> RoutePolicy:
    accepted = frozenset(providers) if providers is not None else None
    return RoutePolicy(policy, frozenset(methods), roles, mode, accepted)  # type: ignore[arg-type]


BEARER_ALICE = Credential("bearer", "alice")
API_KEY = Credential("apikey", KEY)


@pytest.mark.parametrize(
    ("credential", "route", "expected"),
    [
        (BEARER_ALICE, policy(), ("jwt", "alice")),
        (BEARER_ALICE, policy(mode="introspect"), ("introspect", "alice")),
        (API_KEY, policy(), ("apikey", "acme")),
        (None, policy("optional"), None),
        (BEARER_ALICE, policy("optional"), ("jwt", "alice")),
        (Credential("bearer", "bob"), policy(roles=("admin", "ops")), ("jwt", "bob")),
        (API_KEY, policy(roles=("partner",), methods=("apikey",)), ("apikey", "acme")),
        (BEARER_ALICE, policy(providers=("staff", "customers")), ("jwt", "alice")),
        # A provider restriction concerns bearer tokens only.
        (API_KEY, policy(providers=("staff",)), ("apikey", "acme")),
    ],
)
async def test_accepted(credential: Credential | None, route: RoutePolicy, expected: Any) -> None:
    identity = await authenticator().authenticate(credential, route)
    got = (identity.method, identity.subject) if identity is not None else None
    assert got == expected


@pytest.mark.parametrize(
    ("credential", "route", "status", "code", "description"),
    [
        (None, policy(), 401, None, "missing bearer token"),
        (Credential("bearer", "mallory"), policy(), 401, "invalid_token", "signature invalid"),
        (
            Credential("bearer", "mallory"),
            policy("optional"),
            401,
            "invalid_token",
            "signature invalid",
        ),
        (
            BEARER_ALICE,
            policy(methods=("apikey",)),
            401,
            None,
            "bearer tokens are not accepted on this route",
        ),
        (API_KEY, policy(methods=("jwt",)), 401, None, "api keys are not accepted on this route"),
        (
            BEARER_ALICE,
            policy(roles=("admin",)),
            403,
            "insufficient_scope",
            "missing required role",
        ),
        (Credential("apikey", "mgk_x"), policy(), 401, "invalid_token", "malformed api key"),
        (
            BEARER_ALICE,
            policy(providers=("staff",)),
            401,
            "invalid_token",
            "token issuer not accepted on this route",
        ),
        # Before the role check: the token is not acceptable here at all.
        (
            BEARER_ALICE,
            policy(providers=("staff",), roles=("admin",)),
            401,
            "invalid_token",
            "token issuer not accepted on this route",
        ),
        (
            BEARER_ALICE,
            policy("optional", providers=("staff",)),
            401,
            "invalid_token",
            "token issuer not accepted on this route",
        ),
    ],
)
async def test_refused(
    credential: Credential | None,
    route: RoutePolicy,
    status: int,
    code: str | None,
    description: str,
) -> None:
    with pytest.raises(AuthError) as caught:
        await authenticator().authenticate(credential, route)
    error = caught.value
    assert (error.status, error.code, error.description) == (status, code, description)
    if status == 403:
        assert error.scope == "admin"


async def test_cached_answers_give_the_same_identity_object() -> None:
    auth = authenticator()
    first = await auth.authenticate(BEARER_ALICE, policy())
    assert await auth.authenticate(BEARER_ALICE, policy()) is first
    key_first = await auth.authenticate(API_KEY, policy())
    assert await auth.authenticate(API_KEY, policy()) is key_first


async def test_not_started_means_unavailable_not_invalid() -> None:
    auth = Authenticator()
    with pytest.raises(KeysUnavailable):
        await auth.authenticate(BEARER_ALICE, policy())
    with pytest.raises(ApiKeysUnavailable):
        await auth.authenticate(API_KEY, policy())


def with_jwt_verifier(key_source: CountingKeySource, clock: FakeClock) -> Authenticator:
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE, provider="default")
    jwt = JwtVerifier(settings, key_source, clock)
    return Authenticator(
        Verifiers(
            jwt=jwt, introspection=Tokens("introspect"), api_keys=ApiKeyVerifier(lookup, clock)
        )
    )


async def outcome(auth: Authenticator, credential: Credential, route: RoutePolicy) -> Any:
    """What authenticate decides: the identity, or the refusal's fields."""
    try:
        return await auth.authenticate(credential, route)
    except AuthError as error:
        return (error.status, error.code, error.description, error.scope)


def sent(credential: Credential) -> CIMultiDictProxy[str]:
    """The request headers presenting ``credential`` in its plain form."""
    if credential.kind == "bearer":
        return headers(("Authorization", f"Bearer {credential.secret}"))
    return headers(("X-API-Key", credential.secret))


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def cached_outcome(auth: Authenticator, credential: Credential, route: RoutePolicy) -> Any:
    try:
        return auth.cached(sent(credential), route)
    except AuthError as error:
        return (error.status, error.code, error.description, error.scope)


ROUTES = [
    policy(),
    policy("optional"),
    policy(roles=("admin",)),
    policy(roles=("partner", "user")),
    policy(methods=("jwt",)),
    policy(methods=("apikey",)),
    policy(mode="introspect"),
    policy(providers=("default",)),
    policy(providers=("other",)),
    policy(providers=("other",), roles=("user",)),
]


@pytest.mark.parametrize("route", ROUTES)
async def test_cached_decides_as_authenticate_does_or_not_at_all(
    route: RoutePolicy,
    key_source: CountingKeySource,
    clock: FakeClock,
    tokens: TokenFactory,
    ec_key: Any,
) -> None:
    auth = with_jwt_verifier(key_source, clock)
    unknown, _ = generate_key()
    credentials = [
        Credential("bearer", tokens.sign(ec_key, "ec-1")),
        Credential("apikey", KEY),
        Credential("apikey", unknown),
    ]
    for credential in credentials:
        assert cached_outcome(auth, credential, route) is None  # nothing cached yet
        await outcome(auth, credential, policy())  # now it is
    for credential in credentials:
        quick = cached_outcome(auth, credential, route)
        if quick is not None:
            assert quick == await outcome(auth, credential, route)
    bearer_route = route.mode == "jwt" and "jwt" in route.methods
    assert (cached_outcome(auth, credentials[0], route) is not None) == bearer_route
    assert (cached_outcome(auth, credentials[1], route) is not None) == ("apikey" in route.methods)


async def test_cached_gives_the_same_identity_object_as_authenticate(
    key_source: CountingKeySource, clock: FakeClock, tokens: TokenFactory, ec_key: Any
) -> None:
    auth = with_jwt_verifier(key_source, clock)
    token = tokens.sign(ec_key, "ec-1")
    identity = await auth.authenticate(Credential("bearer", token), policy())
    assert auth.cached(sent(Credential("bearer", token)), policy()) is identity
    record_identity = await auth.authenticate(API_KEY, policy())
    assert auth.cached(sent(API_KEY), policy()) is record_identity
    assert auth.cached(headers(("Authorization", f"ApiKey {KEY}")), policy()) is record_identity
    assert key_source.lookups == 1


async def test_cached_trusts_only_verifiers_that_vouch_for_the_token_shape() -> None:
    auth = authenticator()  # a bearer verifier that is not a JwtVerifier
    await auth.authenticate(BEARER_ALICE, policy())
    assert auth.cached(sent(BEARER_ALICE), policy()) is None
    assert Authenticator().cached(sent(BEARER_ALICE), policy()) is None
    assert Authenticator().cached(sent(API_KEY), policy()) is None


async def test_cached_follows_installed_jwt_verifier_and_its_size_limit(
    key_source: CountingKeySource, clock: FakeClock, tokens: TokenFactory, ec_key: Any
) -> None:
    token = tokens.sign(ec_key, "ec-1")
    jwt = JwtVerifier(JwtSettings(issuer=ISSUER, audience=AUDIENCE), key_source, clock)
    auth = Authenticator(Verifiers(jwt=jwt))
    identity = await auth.authenticate(Credential("bearer", token), policy())
    bearer = sent(Credential("bearer", token))
    assert auth.cached(bearer, policy()) is identity
    # Over the installed verifier's size limit, the token is not looked up.
    small = JwtVerifier(
        JwtSettings(issuer=ISSUER, audience=AUDIENCE, max_token_bytes=len(token) - 1),
        key_source,
        clock,
    )
    auth.install(Verifiers(jwt=small))
    assert auth.cached(bearer, policy()) is None
    auth.install(Verifiers())
    assert auth.cached(bearer, policy()) is None
    auth.install(Verifiers(jwt=jwt))
    assert auth.cached(bearer, policy()) is identity


@pytest.mark.parametrize(
    ("form", "decided"),
    [
        ((("Authorization", "Bearer {token}"),), True),
        ((("Authorization", "ApiKey {key}"),), True),
        ((("x-api-key", "{key}"),), True),
        ((("AUTHORIZATION", "Bearer {token}"),), True),  # names are case-insensitive
        # Other spellings, other schemes, several credentials: the full path decides.
        ((), False),
        ((("Authorization", "bearer {token}"),), False),
        ((("Authorization", "Bearer  {token}"),), False),
        ((("Authorization", "Bearer\t{token}"),), False),
        ((("Authorization", "apikey {key}"),), False),
        ((("X-API-Key", " {key} "),), False),
        ((("Authorization", "Basic dXNlcjpwYXNz"),), False),
        ((("Authorization", "Basic dXNlcjpwYXNz"), ("X-API-Key", "{key}")), False),
        ((("Authorization", "Bearer {token}"), ("Authorization", "Bearer {token}")), False),
        ((("Authorization", "Bearer {token}"), ("X-API-Key", "{key}")), False),
        ((("Authorization", "ApiKey {key}"), ("X-API-Key", "{key}")), False),
        ((("X-API-Key", "{key}"), ("X-API-Key", "{key}")), False),
    ],
)
async def test_cached_decides_only_plain_forms_and_exactly_the_presented_credential(
    form: tuple[tuple[str, str], ...],
    decided: bool,
    key_source: CountingKeySource,
    clock: FakeClock,
    tokens: TokenFactory,
    ec_key: Any,
) -> None:
    """The contract the filter's cached path stands on: whatever cached() answers
    for is the credential presented_credential reads from the same headers."""
    auth = with_jwt_verifier(key_source, clock)
    token = tokens.sign(ec_key, "ec-1")
    by_secret = {
        token: await auth.authenticate(Credential("bearer", token), policy()),
        KEY: await auth.authenticate(API_KEY, policy()),
    }
    request = headers(*((k, v.format(token=token, key=KEY)) for k, v in form))
    identity = auth.cached(request, policy())
    assert (identity is not None) == decided
    if identity is not None:
        credential = presented_credential(request)
        assert credential is not None and by_secret[credential.secret] is identity
