"""Which credential a request presents (and the ambiguous ones refused)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edge.auth.credentials import Credential, candidate_credential, presented_credential
from edge.auth.errors import AuthError

KEY = "mgk_0123456789ab_" + "A" * 43


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((), None),
        ((("Authorization", "Bearer abc.def.ghi"),), Credential("bearer", "abc.def.ghi")),
        ((("authorization", "bearer   abc"),), Credential("bearer", "abc")),
        ((("Authorization", f"ApiKey {KEY}"),), Credential("apikey", KEY)),
        ((("X-API-Key", f" {KEY} "),), Credential("apikey", KEY)),
        ((("x-api-key", KEY),), Credential("apikey", KEY)),
        ((("Authorization", "Basic dXNlcjpwYXNz"),), None),
        ((("Authorization", "Basic dXNlcjpwYXNz"), ("X-API-Key", KEY)), Credential("apikey", KEY)),
    ],
)
def test_presented(pairs: tuple[tuple[str, str], ...], expected: Credential | None) -> None:
    assert presented_credential(headers(*pairs)) == expected


@pytest.mark.parametrize(
    ("pairs", "description"),
    [
        (
            (("Authorization", "Bearer a"), ("Authorization", "Bearer b")),
            "more than one credential",
        ),
        ((("X-API-Key", KEY), ("X-API-Key", KEY)), "more than one credential"),
        ((("Authorization", "Bearer a"), ("X-API-Key", KEY)), "more than one credential"),
        ((("Authorization", f"ApiKey {KEY}"), ("X-API-Key", KEY)), "more than one credential"),
        ((("Authorization", "Bearer"),), "malformed authorization header"),
        ((("Authorization", "Bearer a b"),), "malformed authorization header"),
        ((("X-API-Key", "  "),), "empty api key"),
    ],
)
def test_refused(pairs: tuple[tuple[str, str], ...], description: str) -> None:
    with pytest.raises(AuthError) as caught:
        presented_credential(headers(*pairs))
    assert (caught.value.status, caught.value.description) == (400, description)


def test_repr_never_shows_the_secret() -> None:
    assert KEY not in repr(Credential("apikey", KEY))


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((), None),
        ((("Authorization", "Bearer abc.def.ghi"),), ("bearer", "abc.def.ghi")),
        ((("Authorization", f"ApiKey {KEY}"),), ("apikey", KEY)),
        ((("x-api-key", KEY),), ("apikey", KEY)),
        # Unchecked: no cache holds such a secret, so it goes the full way.
        ((("Authorization", "Bearer a b"),), ("bearer", "a b")),
        ((("X-API-Key", f" {KEY} "),), ("apikey", f" {KEY} ")),
        # Other spellings, other schemes, several credentials: the full path decides.
        ((("Authorization", "bearer abc"),), None),
        ((("Authorization", "Bearer\tabc"),), None),
        ((("Authorization", "apikey abc"),), None),
        ((("Authorization", "Basic dXNlcjpwYXNz"),), None),
        ((("Authorization", "Basic dXNlcjpwYXNz"), ("X-API-Key", KEY)), None),
        ((("Authorization", "Bearer a"), ("Authorization", "Bearer a")), None),
        ((("Authorization", "Bearer a"), ("X-API-Key", KEY)), None),
        ((("X-API-Key", KEY), ("X-API-Key", KEY)), None),
    ],
)
def test_candidate(pairs: tuple[tuple[str, str], ...], expected: tuple[str, str] | None) -> None:
    assert candidate_credential(headers(*pairs)) == expected


# RFC 6750 §2.1, written out here independently of edge.auth.bearer.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
SECRETS = [
    "abc.def.ghi",
    KEY,
    "a=",
    "a=b",
    "a!",
    "",
    " ",
    "a b",
    " a",
    "a ",
    "\ta",
    "a\t",
    "Bearer a",
    "ApiKey a",
]
FORMS: list[Callable[[str], tuple[tuple[str, str], ...]]] = [
    lambda s: (("Authorization", f"Bearer {s}"),),
    lambda s: (("Authorization", f"ApiKey {s}"),),
    lambda s: (("X-API-Key", s),),
    lambda s: (("Authorization", f"Bearer {s}"), ("Authorization", "Bearer x")),
    lambda s: (("Authorization", f"Bearer {s}"), ("X-API-Key", KEY)),
    lambda s: (("X-API-Key", s), ("Authorization", "Basic x")),
    lambda s: (("X-API-Key", s), ("X-API-Key", s)),
    lambda s: (("Authorization", f"ApiKey {s}"), ("X-API-Key", s)),
]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("form", range(len(FORMS)))
def test_a_candidate_of_the_shape_caches_hold_is_the_presented_credential(
    secret: str, form: int
) -> None:
    """The contract the filter's cached path stands on."""
    request = headers(*FORMS[form](secret))
    candidate = candidate_credential(request)
    if candidate is None:
        return
    kind, found = candidate
    if not found or found.strip(" \t") != found:
        return
    if kind == "bearer" and not B64TOKEN.match(found):
        return
    assert presented_credential(request) == Credential(kind, found)
