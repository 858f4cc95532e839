"""unverified_issuer: reading iss to pick a provider, and every malformed shape refused."""

from __future__ import annotations

import base64
import json

import pytest

from edge.auth.errors import AuthError
from edge.auth.unverified_issuer import unverified_issuer


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token_with(payload: object) -> str:
    return f"{segment(b'{}')}.{segment(json.dumps(payload).encode())}.sig"


def test_reads_iss_without_checking_anything_else() -> None:
    assert unverified_issuer(token_with({"iss": "https://a.example"})) == "https://a.example"
    # Padding-free base64url with '-' and '_' decodes (this payload needs both).
    payload = {"iss": "x", "n": "\u00ff\u00fe>>>???"}
    assert unverified_issuer(token_with(payload)) == "x"


@pytest.mark.parametrize(
    ("token", "description"),
    [
        ("", "malformed token"),
        ("a.b", "malformed token"),
        ("a.b.c.d", "malformed token"),
        ("e30..sig", "malformed token"),  # empty payload
        ("e30.e30=.sig", "malformed token"),  # padding is not base64url here
        ("e30.e3+.sig", "malformed token"),  # '+' is not base64url
        (f"e30.{segment(b'not json')}.sig", "malformed token"),
        ("e30." + segment(b"\xff\xfe") + ".sig", "malformed token"),  # not UTF-8
        (token_with(["iss"]), "malformed token"),
        (token_with({"sub": "a"}), "missing iss"),
        (token_with({"iss": ""}), "missing iss"),
        (token_with({"iss": 7}), "missing iss"),
        (token_with({"iss": ["a"]}), "missing iss"),
    ],
)
def test_refusals(token: str, description: str) -> None:
    with pytest.raises(AuthError) as caught:
        unverified_issuer(token)
    assert (caught.value.code, caught.value.description) == ("invalid_token", description)
