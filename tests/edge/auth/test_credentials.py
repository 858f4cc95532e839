"""Which credential a request presents (and the ambiguous ones refused)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edge.auth.credentials import Credential, presented_credential
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
