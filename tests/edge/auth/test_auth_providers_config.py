"""auth.providers and routes' auth.providers: what loads, what it resolves to, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.auth.config import DEFAULT_PROVIDER, AuthConfig, JwksConfig, RouteAuthConfig
from edge.auth.policy import RoutePolicies
from tests.edge.refused_config import assert_refused

STAFF = "staff: {issuer: https://sso.staff, audience: staff-api, jwks: {url: 'http://sso/jwks'}}"
CUSTOMERS = "customers: {issuer: https://login.cust, audience: api, jwks: {service: login}}"
TOP = "issuer: https://auth.demo, audience: meshgate, jwks: {service: auth}"


def auth(**values: object) -> AuthConfig:
    return AuthConfig.model_validate(values)


def test_the_top_level_settings_alone_are_the_default_provider_as_before() -> None:
    config = auth(issuer="https://auth.demo", audience="meshgate", jwks={"service": "auth"})
    [(name, provider)] = config.jwt_providers().items()
    assert name == provider.name == DEFAULT_PROVIDER
    assert (provider.issuer, provider.audience) == ("https://auth.demo", "meshgate")
    assert provider.jwks == JwksConfig(service="auth")
    assert (provider.algorithms, provider.leeway) == (config.algorithms, config.leeway)
    assert config.available_methods() == ("jwt",)


def test_nothing_configured_is_no_provider() -> None:
    assert AuthConfig().jwt_providers() == {}
    assert AuthConfig().available_methods() == ()


def test_named_providers_alone_configure_jwt_and_inherit_what_they_leave_out() -> None:
    config = auth(
        leeway=20,
        algorithms=["ES256"],
        providers={
            "staff": {
                "issuer": "https://sso.staff",
                "audience": "staff-api",
                "jwks": {"url": "http://sso/jwks", "cooldown": 5},
                "algorithms": ["RS256"],
                "leeway": 0,
            },
            "customers": {"issuer": "https://c", "audience": "api", "jwks": {"service": "c"}},
        },
    )
    assert config.available_methods() == ("jwt",)
    assert config.effective_default_route().policy == "required"
    staff, customers = config.jwt_providers().values()
    assert (staff.name, staff.algorithms, staff.leeway) == ("staff", ("RS256",), 0.0)
    assert staff.jwks.cooldown == 5.0
    assert (customers.name, customers.algorithms, customers.leeway) == (
        "customers",
        ("ES256",),
        20.0,
    )


def test_default_comes_first_beside_named_providers() -> None:
    config = auth(
        issuer="https://auth.demo",
        audience="meshgate",
        jwks={"service": "auth"},
        providers={"staff": {"issuer": "https://s", "audience": "a", "jwks": {"service": "s"}}},
    )
    assert list(config.jwt_providers()) == [DEFAULT_PROVIDER, "staff"]


PROVIDER_ERRORS = [
    (
        f"auth: {{providers: {{{STAFF}, other: {{issuer: https://sso.staff, audience: x, "
        "jwks: {service: s}}}}",
        "auth.providers",
        "other.issuer: provider staff has the same issuer",
    ),
    (
        f"auth: {{{TOP}, providers: {{x: {{issuer: https://auth.demo, audience: b, "
        "jwks: {service: s}}}}",
        "auth",
        "providers.x.issuer: the top-level issuer is the same",
    ),
    (
        f"auth: {{{TOP}, providers: {{default: {{issuer: https://b, audience: b, "
        "jwks: {service: s}}}}",
        "auth",
        "providers.default: the name is taken",
    ),
    (
        "auth: {providers: {a: {audience: b, jwks: {service: s}}}}",
        "auth.providers.a.issuer",
        "required key is missing",
    ),
    (
        "auth: {providers: {a: {issuer: '', audience: b, jwks: {service: s}}}}",
        "auth.providers.a.issuer",
        "at least 1 character",
    ),
    (
        "auth: {providers: {a: {issuer: i, jwks: {service: s}}}}",
        "auth.providers.a.audience",
        "required key is missing",
    ),
    ("auth: {providers: {a: {issuer: i, audience: b}}}", "auth.providers.a.jwks", "required"),
    (
        "auth: {providers: {a: {issuer: i, audience: b, jwks: {path: /k}}}}",
        "auth.providers.a.jwks",
        "url or service is required",
    ),
    (
        "auth: {providers: {a: {issuer: i, audience: b, jwks: {url: 'ftp://k'}}}}",
        "auth.providers.a.jwks.url",
        "http:// or https://",
    ),
    (
        "auth: {providers: {a: {issuer: i, audience: b, jwks: {service: s}, leeway: 61}}}",
        "auth.providers.a.leeway",
        "at most 60 seconds",
    ),
    (
        "auth: {providers: {a: {issuer: i, audience: b, jwks: {service: s}, algorithms: [HS256]}}}",
        "auth.providers.a.algorithms",
        "'HS256' is not allowed",
    ),
    (
        "auth: {providers: {a: {issuer: i, audience: b, jwks: {service: s}, x: 1}}}",
        "auth.providers.a.x",
        "unknown key",
    ),
    (
        "auth: {providers: {'a b': {issuer: i, audience: b, jwks: {service: s}}}}",
        "auth.providers",
        "names are 1 to 64 of",
    ),
    # Routes naming providers.
    (
        f"auth: {{providers: {{{STAFF}}}}}\n"
        "routes: [{prefix: /a, service: a}, {prefix: /b, service: b, "
        "auth: {providers: [staff, customers]}}]",
        "",
        "routes[1].auth: provider customers is not configured (auth.providers; configured: staff)",
    ),
    (
        f"auth: {{{TOP}}}\nroutes: [{{prefix: /a, service: a, auth: {{providers: [staff]}}}}]",
        "",
        "routes[0].auth: provider staff is not configured (auth.providers; configured: default)",
    ),
    (
        f"auth: {{providers: {{{STAFF}}}, introspection: {{service: auth}}}}\n"
        "routes: [{prefix: /a, service: a, auth: {mode: introspect, providers: [staff]}}]",
        "",
        "routes[0].auth: providers need mode jwt",
    ),
    (
        f"auth: {{providers: {{{STAFF}}}, api_keys: {{redis_url: 'redis://r'}}}}\n"
        "routes: [{prefix: /a, service: a, auth: {methods: [apikey], providers: [staff]}}]",
        "",
        "routes[0].auth: providers need method jwt",
    ),
    (
        f"auth: {{providers: {{{STAFF}}}}}\n"
        "routes: [{prefix: /a, service: a, auth: {providers: []}}]",
        "routes[0].auth.providers",
        "at least one provider",
    ),
    (
        f"auth: {{providers: {{{STAFF}}}}}\n"
        "routes: [{prefix: /a, service: a, auth: {policy: none, providers: [staff]}}]",
        "routes[0].auth",
        "make no sense with policy: none",
    ),
    (
        f"auth: {{providers: {{{STAFF}}}, default_route: {{providers: [nobody]}}}}",
        "auth",
        "default_route: provider nobody is not configured",
    ),
]


@pytest.mark.parametrize(("text", "key_path", "problem"), PROVIDER_ERRORS)
def test_refused_with_key_path(tmp_path: Path, text: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, text, key_path, problem)


def test_route_policies_resolve_providers() -> None:
    config = auth(
        providers={
            "staff": {"issuer": "https://s", "audience": "a", "jwks": {"service": "s"}},
            "customers": {"issuer": "https://c", "audience": "a", "jwks": {"service": "c"}},
        }
    )
    policies = RoutePolicies(config)
    assert policies.default.providers is None  # every provider
    only_staff = policies.resolve_options({"auth": {"providers": ["staff", "staff"]}})
    assert only_staff.providers == frozenset({"staff"})
    assert RouteAuthConfig(providers=("a", "a", "b")).providers == ("a", "b")
    with pytest.raises(ValueError, match="provider nobody is not configured"):
        policies.resolve_options({"auth": {"providers": ["nobody"]}})
