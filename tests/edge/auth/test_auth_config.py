"""Auth configuration: defaults, validation messages, and what each route ends up requiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.auth.config import AuthConfig, RouteAuthConfig
from edge.config import EdgeConfig
from tests.edge.refused_config import assert_refused

JWT: dict[str, Any] = {"issuer": "http://auth", "audience": "meshgate", "jwks": {"service": "auth"}}
API_KEYS: dict[str, Any] = {"api_keys": {"redis_url": "redis://127.0.0.1:6379/0"}}


def test_defaults_configure_no_method_and_require_nothing() -> None:
    config = AuthConfig()
    assert config.available_methods() == ()
    assert not config.any_method
    assert config.effective_default_route() == RouteAuthConfig(policy="none")
    assert config.identity.headers == (
        "X-User-Id",
        "X-User-Roles",
        "X-User-Email",
        "X-Consumer-Id",
        "X-Auth-Method",
        "X-Auth-Provider",
    )
    assert config.identity.token.header == "X-Mesh-Identity"
    assert config.api_keys.cache_ttl == 5.0


def test_once_a_method_is_configured_routes_require_a_caller_by_default() -> None:
    assert AuthConfig.model_validate(JWT).effective_default_route().policy == "required"
    config = AuthConfig.model_validate(API_KEYS)
    assert config.available_methods() == ("apikey",)
    assert config.effective_default_route().policy == "required"
    both = AuthConfig.model_validate({**JWT, **API_KEYS})
    assert both.available_methods() == ("jwt", "apikey")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", RouteAuthConfig(policy="none")),
        ("optional", RouteAuthConfig(policy="optional")),
        ({"roles": ["admin"]}, RouteAuthConfig(policy="required", roles=("admin",))),
        ({"methods": ["apikey", "apikey"]}, RouteAuthConfig(methods=("apikey",))),
    ],
)
def test_route_auth_forms(value: Any, expected: RouteAuthConfig) -> None:
    assert RouteAuthConfig.model_validate(value) == expected


EDGE_ERRORS = [
    ("auth: {leeway: 61s}", "auth.leeway", "at most 60 seconds"),
    ("auth: {algorithms: [HS256]}", "auth.algorithms", "'HS256' is not allowed"),
    ("auth: {algorithms: [none]}", "auth.algorithms", "'none' is not allowed"),
    ("auth: {algorithms: []}", "auth.algorithms", "at least one"),
    ("auth: {jwks: {service: auth}}", "auth", "issuer and audience are required"),
    (
        "auth: {jwks: {service: auth, url: 'http://a/jwks'}}",
        "auth.jwks",
        "either url or service",
    ),
    ("auth: {jwks: {url: 'ftp://a'}}", "auth.jwks.url", "http:// or https://"),
    ("auth: {mode: introspect}", "auth", "mode introspect needs"),
    ("auth: {max_token_bytes: 100}", "auth.max_token_bytes", "greater than or equal to 256"),
    ("auth: {api_keys: {redis_url: 'http://x'}}", "auth.api_keys.redis_url", "redis://"),
    ("auth: {api_keys: {cache_ttl: 0}}", "auth.api_keys.cache_ttl", "more than 0"),
    (
        "auth: {identity: {claims: {X-Admin: sub}}}",
        "auth.identity",
        "X-Admin is not in identity.headers",
    ),
    ("auth: {identity: {headers: ['X User']}}", "auth.identity.headers[0]", "not a valid header"),
    (
        "auth: {identity: {token: {header: X-User-Id}}}",
        "auth.identity",
        "token.header must not be one of identity.headers",
    ),
    ("auth: {identity: {token: {lifetime: 0.5s}}}", "auth.identity.token.lifetime", "1 to 300"),
    ("auth: {default_route: required}", "auth", "default_route: policy required needs"),
    (
        "routes: [{prefix: /a, service: a, auth: required}]",
        "",
        "routes[0].auth: policy required needs an authentication method",
    ),
    (
        "routes: [{prefix: /a, service: a, auth: {roles: [admin], policy: optional}}]",
        "routes[0].auth",
        "roles need policy: required",
    ),
    (
        "routes: [{prefix: /a, service: a, auth: {policy: none, methods: [jwt]}}]",
        "routes[0].auth",
        "make no sense with policy: none",
    ),
    (
        "auth: {issuer: i, audience: a, jwks: {service: auth}}\n"
        "routes: [{prefix: /a, service: a, auth: {methods: [apikey]}}]",
        "",
        "routes[0].auth: method apikey is not configured (auth.api_keys.redis_url)",
    ),
    (
        "auth: {issuer: i, audience: a, jwks: {service: auth}}\n"
        "routes: [{prefix: /a, service: a, auth: {mode: introspect}}]",
        "",
        "routes[0].auth: mode introspect needs",
    ),
    (
        "workers: 2\nauth: {issuer: i, audience: a, jwks: {service: auth}}",
        "",
        "signing_key_file is required with workers > 1",
    ),
    ("tls: {cert_file: a.pem}", "tls.key_file", "required key is missing"),
    ("tls: {cert_file: a, key_file: b, min_version: TLS1.1}", "tls.min_version", "TLS1.2"),
]


@pytest.mark.parametrize(("text", "key_path", "problem"), EDGE_ERRORS)
def test_invalid_auth_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key_path: str, problem: str
) -> None:
    assert_refused(tmp_path, text, key_path, problem)


def test_a_working_configuration_loads() -> None:
    config = EdgeConfig.model_validate(
        {
            "auth": {
                **JWT,
                **API_KEYS,
                "introspection": {
                    "service": "auth",
                    "client_id": "edge",
                    "client_secret": "s3cr3t",
                },
                "default_route": {"methods": ["jwt"]},
            },
            "routes": [
                {"prefix": "/auth", "service": "auth", "auth": "none"},
                {"prefix": "/keys", "service": "k", "auth": {"methods": ["apikey"]}},
                {"prefix": "/i", "service": "i", "auth": {"mode": "introspect"}},
            ],
        }
    )
    assert config.auth.introspection.client_secret == "s3cr3t"
    assert "s3cr3t" not in repr(config.auth.introspection)  # the secret is not in reprs
