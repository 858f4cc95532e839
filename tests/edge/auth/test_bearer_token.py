"""bearer_token: the Authorization header parsing of RFC 6750 §2.1."""

from __future__ import annotations

import pytest

from edge.auth.bearer import bearer_token
from edge.auth.errors import AuthError


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Bearer a-b_c~d+e/f==", "a-b_c~d+e/f=="),
    ],
)
def test_extracts_the_token(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "   ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_no_bearer_credentials_is_a_plain_401_challenge(header: str | None) -> None:
    with pytest.raises(AuthError) as refused:
        bearer_token(header)
    assert (refused.value.status, refused.value.code) == (401, None)


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer =abc", "Bearer abc\n"]
)
def test_malformed_bearer_header_is_invalid_request(header: str) -> None:
    with pytest.raises(AuthError) as refused:
        bearer_token(header)
    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    assert refused.value.description == "malformed authorization header"
