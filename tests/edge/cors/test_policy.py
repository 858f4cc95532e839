"""CORS decisions and the ``cors`` config's validation (pure, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge.cors.config import CorsConfig
from edge.cors.policy import CorsPolicy, PreflightRefused


def policy(**config: Any) -> CorsPolicy:
    return CorsPolicy(CorsConfig(**{"allow_origins": ["https://app.example.com"], **config}))


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (["https://app.example.com"], "https://app.example.com", True),
        (["https://app.example.com"], "HTTPS://APP.EXAMPLE.COM", True),  # origins are case-blind
        (["https://app.example.com"], "http://app.example.com", False),  # another scheme
        (["https://app.example.com"], "https://app.example.com:8443", False),  # another port
        (["https://app.example.com"], "https://evil.example.com", False),
        (["https://app.example.com"], "https://app.example.com.evil.net", False),
        (["https://*.example.com"], "https://a.example.com", True),
        (["https://*.example.com"], "https://a.b.example.com", True),
        (["https://*.example.com"], "https://example.com", False),  # not the apex
        (["https://*.example.com"], "https://evilexample.com", False),
        (["https://*.example.com"], "http://a.example.com", False),
        (["*"], "https://anything.test", True),
        (["*"], "null", True),
    ],
)
def test_origins(origins: list[str], origin: str, allowed: bool) -> None:
    assert policy(allow_origins=origins).allows(origin) is allowed


def test_an_allowed_response_names_the_origin_and_what_scripts_may_read() -> None:
    p = policy(expose_headers=["X-Request-Id", "RateLimit-Remaining"])
    assert p.response_headers("https://app.example.com") == [
        ("Access-Control-Allow-Origin", "https://app.example.com"),
        ("Access-Control-Expose-Headers", "X-Request-Id, RateLimit-Remaining"),
    ]
    assert p.vary() == "Origin"


def test_any_origin_without_credentials_is_one_answer_for_all() -> None:
    p = policy(allow_origins=["*"], expose_headers=[])
    assert p.response_headers("https://x.test") == [("Access-Control-Allow-Origin", "*")]
    assert p.vary() == ""  # the same for every origin: nothing for caches to tell apart


def test_credentials_echo_the_origin_and_say_so() -> None:
    p = policy(allow_credentials=True, expose_headers=[])
    assert p.response_headers("https://app.example.com") == [
        ("Access-Control-Allow-Origin", "https://app.example.com"),
        ("Access-Control-Allow-Credentials", "true"),
    ]


def test_a_preflight_within_the_policy() -> None:
    p = policy(allow_methods=["GET", "put"], allow_headers=["Authorization", "Content-Type"])
    answer = p.preflight("https://app.example.com", "PUT", "content-type, authorization")
    assert answer == [
        ("Access-Control-Allow-Origin", "https://app.example.com"),
        ("Access-Control-Allow-Methods", "GET, PUT"),
        ("Access-Control-Max-Age", "600"),
        ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
    ]


def test_any_header_echoes_what_was_asked() -> None:
    p = policy(allow_headers=["*"])
    answer = p.preflight("https://app.example.com", "GET", "X-One, x-two")
    assert not isinstance(answer, PreflightRefused)
    assert ("Access-Control-Allow-Headers", "X-One, x-two") in answer


@pytest.mark.parametrize(
    ("origin", "method", "headers", "detail"),
    [
        ("https://evil.test", "GET", None, "origin 'https://evil.test' is not allowed"),
        ("https://app.example.com", "TRACE", None, "method 'TRACE' is not allowed"),
        (
            "https://app.example.com",
            "GET",
            "Content-Type, X-Secret",
            "request header 'X-Secret' is not allowed",
        ),
    ],
)
def test_a_preflight_outside_the_policy_says_what(
    origin: str, method: str, headers: str | None, detail: str
) -> None:
    assert policy().preflight(origin, method, headers) == PreflightRefused(detail)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"allow_origins": []}, "at least 1"),
        ({"allow_origins": ["app.example.com"]}, "is not an origin"),
        ({"allow_origins": ["https://app.example.com/"]}, "is not an origin"),
        ({"allow_origins": ["ftp://app.example.com"]}, "is not an origin"),
        ({"allow_origins": ["https://app.*.com"]}, "may only start the host"),
        ({"allow_origins": ["*"], "allow_credentials": True}, "needs the origins listed"),
    ],
)
def test_bad_config_is_refused_with_a_reason(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CorsConfig(**config)
