"""The authentication decision, table-driven, with fake verifiers."""

from __future__ import annotations

from typing import Any

import pytest

from edge.auth.apikey_verifier import ApiKeysUnavailable, ApiKeyVerifier
from edge.auth.apikeys import ApiKeyRecord, generate_key
from edge.auth.authenticator import Authenticator, Verifiers
from edge.auth.claims import Claims
from edge.auth.credentials import Credential
from edge.auth.errors import AuthError
from edge.auth.keys import KeysUnavailable
from edge.auth.policy import RoutePolicy
from tests.edge.auth.conftest import FakeClock

ALICE = Claims(subject="alice", roles=("user",))
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
) -> RoutePolicy:
    return RoutePolicy(policy, frozenset(methods), roles, mode)  # type: ignore[arg-type]


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
