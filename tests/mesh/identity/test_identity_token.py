"""The identity token: signed by the edge, checked by sidecars, refused when anything is off."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mesh.identity.keys import IdentityAlgorithm, b64url, generate_signing_key, sign
from mesh.identity.token import (
    TOKEN_TYPE,
    UNKNOWN_KEY,
    IdentitySigner,
    IdentityTokenError,
    header_segment,
    verification_keys,
    verify_identity_token,
)

NOW = 1_700_000_000.0
HEADERS = (("X-User-Id", "alice"), ("X-User-Roles", "user,admin"))


def signer(algorithm: IdentityAlgorithm = "ES256", now: float = NOW) -> IdentitySigner:
    return IdentitySigner(generate_signing_key(algorithm), lifetime_s=30, clock=lambda: now)


def token_of(s: IdentitySigner, **overrides: Any) -> str:
    args: dict[str, Any] = {
        "subject": "alice",
        "roles": ["user", "admin"],
        "request_id": "req-00000001",
        "method": "jwt",
        "headers": HEADERS,
    }
    args.update(overrides)
    return s.sign(**args)


def check(token: str, s: IdentitySigner, now: float = NOW, issuer: str = "meshgate-edge") -> Any:
    keys = verification_keys([s.public_key])
    return verify_identity_token(token, keys, issuer=issuer, now=now, leeway_s=5)


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_round_trip(algorithm: IdentityAlgorithm) -> None:
    s = signer(algorithm)
    assertion = check(token_of(s), s)
    assert assertion.subject == "alice"
    assert assertion.roles == ("user", "admin")
    assert assertion.request_id == "req-00000001"
    assert assertion.method == "jwt"
    assert assertion.headers == HEADERS
    assert (assertion.issued_at, assertion.expires_at) == (NOW, NOW + 30)


def test_the_token_is_a_standard_jws_with_an_explicit_type() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    s = IdentitySigner(key, clock=lambda: NOW)
    token = token_of(s)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": s.kid, "typ": TOKEN_TYPE}
    claims = jwt.decode(
        token, key.public_key(), algorithms=["ES256"], options={"verify_exp": False}
    )
    assert claims["sub"] == "alice" and claims["hdr"] == dict(HEADERS)
    assert s.jwks()["keys"][0]["kid"] == s.kid


def test_the_identity_part_is_serialised_once_per_caller_but_each_token_is_fresh() -> None:
    s = signer()
    first, second = token_of(s), token_of(s, request_id="req-00000002")
    assert check(first, s).request_id == "req-00000001"
    assert check(second, s).request_id == "req-00000002"
    other = token_of(s, subject="bob", headers=(("X-User-Id", "bob"),))
    assert check(other, s).headers == (("X-User-Id", "bob"),)


def _payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _resign(s: IdentitySigner, key: Any, payload: dict[str, Any]) -> str:
    head = header_segment(s.algorithm, s.kid)
    signing_input = f"{head}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(sign(key, signing_input.encode()))}"


def test_refusals() -> None:
    key = generate_signing_key("ES256")
    s = IdentitySigner(key, lifetime_s=30, clock=lambda: NOW)
    good = token_of(s)
    head, body, sig = good.split(".")
    forged_payload = _payload(good) | {"sub": "admin"}
    other = signer()
    none_head = b64url(json.dumps({"alg": "none"}).encode())
    cases: dict[str, tuple[Callable[[], Any], str]] = {
        "tampered payload": (
            lambda: check(f"{head}.{b64url(json.dumps(forged_payload).encode())}.{sig}", s),
            "signature invalid",
        ),
        "another key": (lambda: check(token_of(other), s), UNKNOWN_KEY),
        "header changed": (lambda: check(f"{none_head}.{body}.", s), UNKNOWN_KEY),
        "an access token": (
            lambda: check(jwt.encode({"sub": "x"}, key, "ES256", headers={"kid": s.kid}), s),
            UNKNOWN_KEY,
        ),
        "two segments": (lambda: check(f"{head}.{body}", s), "malformed token"),
        "bad signature encoding": (lambda: check(f"{head}.{body}.a+b", s), "malformed token"),
        "expired": (lambda: check(good, s, now=NOW + 30 + 5), "token expired"),
        "from the future": (lambda: check(good, s, now=NOW - 6), "token issued in the future"),
        "other issuer": (lambda: check(good, s, issuer="someone"), "issuer mismatch"),
        "too large": (lambda: check("a" * 9000, s), "token too large"),
        "roles not a list": (
            lambda: check(_resign(s, key, _payload(good) | {"roles": "admin"}), s),
            "invalid claims",
        ),
        "header name with a space": (
            lambda: check(_resign(s, key, _payload(good) | {"hdr": {"X User": "a"}}), s),
            "invalid claims",
        ),
        "header value with a newline": (
            lambda: check(_resign(s, key, _payload(good) | {"hdr": {"X-User-Id": "a\r\nX: 1"}}), s),
            "invalid claims",
        ),
        "exp a string": (
            lambda: check(_resign(s, key, _payload(good) | {"exp": "9999999999"}), s),
            "invalid claims",
        ),
        "missing rid": (
            lambda: check(
                _resign(s, key, {k: v for k, v in _payload(good).items() if k != "rid"}), s
            ),
            "invalid claims",
        ),
    }
    assert check(good, s, now=NOW + 30 + 4).subject == "alice"  # inside the leeway
    for name, (attempt, reason) in cases.items():
        with pytest.raises(IdentityTokenError) as caught:
            attempt()
        assert caught.value.reason == reason, name
        assert good not in str(caught.value)


def test_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IdentitySigner(generate_signing_key("ES256"), lifetime_s=0)
