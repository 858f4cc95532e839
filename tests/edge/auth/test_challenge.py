"""WWW-Authenticate challenges per scheme."""

from __future__ import annotations

from edge.auth.challenge import challenges, title
from edge.auth.errors import AuthError


def test_a_refused_bearer_token_gets_one_bearer_challenge() -> None:
    headers = challenges(
        AuthError.invalid_token("token expired"),
        presented="bearer",
        accepted_methods={"jwt", "apikey"},
        realm="meshgate",
    )
    assert headers.getall("WWW-Authenticate") == [
        'Bearer realm="meshgate", error="invalid_token", error_description="token expired"'
    ]


def test_a_refused_api_key_gets_an_apikey_challenge() -> None:
    headers = challenges(
        AuthError.invalid_token("unknown api key"),
        presented="apikey",
        accepted_methods={"apikey"},
        realm="r",
    )
    assert headers.getall("WWW-Authenticate") == [
        'ApiKey realm="r", error="invalid_token", error_description="unknown api key"'
    ]


def test_no_credentials_get_a_challenge_per_accepted_method() -> None:
    error = AuthError.missing_token()
    both = challenges(error, presented=None, accepted_methods={"apikey", "jwt"}, realm="m")
    assert both.getall("WWW-Authenticate") == ['Bearer realm="m"', 'ApiKey realm="m"']
    keys = challenges(error, presented=None, accepted_methods={"apikey"}, realm="m")
    assert keys.getall("WWW-Authenticate") == ['ApiKey realm="m"']


def test_bad_requests_get_no_challenge_and_titles_follow_status() -> None:
    error = AuthError.invalid_request("more than one credential")
    assert not challenges(error, presented=None, accepted_methods={"jwt"}, realm="m")
    assert title(error) == "Bad request"
    assert title(AuthError.insufficient_scope("x")) == "Forbidden"
    assert title(AuthError.missing_token()) == "Unauthorized"
