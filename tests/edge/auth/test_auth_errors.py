"""AuthError: RFC 6750 challenges and bodies."""

from __future__ import annotations

import pytest

from edge.auth.errors import AuthError


def test_invalid_token_challenge_and_body() -> None:
    error = AuthError.invalid_token("token expired")
    assert error.status == 401
    assert (
        error.www_authenticate(realm="meshgate")
        == 'Bearer realm="meshgate", error="invalid_token", error_description="token expired"'
    )
    assert error.body() == {"error": "invalid_token", "error_description": "token expired"}


def test_insufficient_scope_is_403_and_names_the_scope() -> None:
    error = AuthError.insufficient_scope("admin role required", scope="admin")
    assert error.status == 403
    assert error.www_authenticate() == (
        'Bearer error="insufficient_scope", error_description="admin role required", scope="admin"'
    )
    assert error.body()["scope"] == "admin"


def test_invalid_request_is_400() -> None:
    assert AuthError.invalid_request("two Authorization headers").status == 400


def test_missing_token_challenge_has_no_error_code() -> None:
    error = AuthError.missing_token()
    assert error.status == 401
    assert error.www_authenticate() == "Bearer"
    assert error.www_authenticate(realm="api") == 'Bearer realm="api"'
    assert error.body()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("description", "rendered"),
    [
        ('say "hi"', r"say \"hi\""),
        ("back\\slash", r"back\\slash"),
        ("line\r\nX-Injected: 1", "line??X-Injected: 1"),
        ("caf\u00e9", "caf?"),
    ],
)
def test_parameters_are_quoted_and_cannot_break_the_header(description: str, rendered: str) -> None:
    header = AuthError.invalid_token(description).www_authenticate()
    assert header.endswith(f'error_description="{rendered}"')
    assert "\r" not in header and "\n" not in header


def test_status_can_be_overridden_and_repr_is_informative() -> None:
    error = AuthError("invalid_token", "x", 419)
    assert error.status == 419
    assert repr(error) == "AuthError('invalid_token', 'x', status=419)"
    assert str(error) == "x"
