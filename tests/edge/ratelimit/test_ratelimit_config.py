"""The rate_limits section of the edge config (edge/ratelimit/config.py), through the loader."""

from __future__ import annotations

import pytest

from edge.config import EdgeConfig
from edge.ratelimit.config import RateLimitsConfig, parse_dimension
from edge.ratelimit.limiter import FailureMode
from edge.ratelimit.rate import Rate
from mesh.config.errors import ConfigError
from mesh.config.loader import parse_config

GOOD = """
rate_limits:
  redis: {url: "redis://:pw@redis:6380/1", cluster: true, timeout: 20ms, probe_interval: 1s}
  policies:
    per-user:
      count_by: [user, Route, "Header:X-Tenant", "claim:org_id"]
      limit: 1000/min
      by_role: {admin: unlimited, user: 5/s burst 10}
      by_plan: {free: 1/s}
      on_failure: closed
    anonymous:
      count_by: ip
      by_role: {anonymous: 2/s}
  default_policies: [anonymous]
routes:
  - {prefix: /a, service: a, rate_limits: [per-user, anonymous]}
  - {prefix: /b, service: b, rate_limits: []}
"""


def load(text: str) -> EdgeConfig:
    return parse_config(text, EdgeConfig, file="edge.yaml")


def test_a_full_section_loads() -> None:
    config = load(GOOD)
    limits = config.rate_limits
    assert limits.enabled
    assert limits.redis.cluster and limits.redis.timeout == pytest.approx(0.02)
    settings = limits.redis.limiter_settings()
    assert (settings.timeout_s, settings.probe_interval_s) == (pytest.approx(0.02), 1.0)
    assert limits.redis.client_settings().url == "redis://:pw@redis:6380/1"
    user = limits.policies["per-user"]
    assert user.count_by == ("user", "route", "header:x-tenant", "claim:org_id")
    assert user.limit == Rate.per(1000, 60.0)
    assert user.by_role == {"admin": None, "user": Rate(5.0, 10)}
    assert user.by_plan == {"free": Rate(1.0, 1)}
    assert user.on_failure is FailureMode.CLOSED
    assert limits.policies["anonymous"].on_failure is FailureMode.LOCAL  # the default
    assert limits.policies["anonymous"].count_by == ("ip",)  # one name is a list of one
    assert [r.rate_limits for r in config.routes] == [("per-user", "anonymous"), ()]


def test_defaults_need_no_redis() -> None:
    limits = RateLimitsConfig()
    assert not limits.enabled
    assert limits.redis.url == "redis://127.0.0.1:6379/0"
    assert limits.redis.timeout == 0.05
    assert limits.default_policies == ()


def test_rates_are_shown_as_written() -> None:
    dumped = load(GOOD).rate_limits.model_dump(mode="json")
    policy = dumped["policies"]["per-user"]
    assert policy["limit"] == "1000/min burst 1000"
    assert policy["by_role"] == {"admin": "unlimited", "user": "5/s burst 10"}
    assert dumped["policies"]["anonymous"]["limit"] is None


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "rate_limits: {policies: {per_user: {count_by: user, limit: 20/sec/s}}}",
            "rate_limits.policies.per_user.limit: invalid rate '20/sec/s'",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user, by_role: {admin: 5/fortnight}}}}",
            "rate_limits.policies.p.by_role.admin: invalid rate '5/fortnight': unknown time unit",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user, limit: 0/s}}}",
            "rate_limits.policies.p.limit: invalid rate '0/s': count must be at least 1",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user, limit: 10}}}",
            "rate_limits.policies.p.limit: expected a rate such as '100/s burst 200', got 10",
        ),
        (
            "rate_limits: {policies: {p: {count_by: [user, bogus], limit: 2/s}}}",
            "rate_limits.policies.p.count_by: unknown dimension 'bogus'",
        ),
        (
            "rate_limits: {policies: {p: {count_by: [ip, IP], limit: 2/s}}}",
            "rate_limits.policies.p.count_by: ip is listed twice",
        ),
        (
            "rate_limits: {policies: {p: {count_by: [], limit: 2/s}}}",
            "rate_limits.policies.p.count_by: needs at least one dimension",
        ),
        (
            "rate_limits: {policies: {p: {count_by: 'header:bad header', limit: 1/s}}}",
            "rate_limits.policies.p.count_by: header:bad header is not a valid header name",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user}}}",
            "rate_limits.policies.p: limits nobody",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user, by_role: {admin: unlimited}}}}",
            "rate_limits.policies.p: limits nobody",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user, limit: 1/s, on_failure: maybe}}}",
            "rate_limits.policies.p.on_failure: Input should be 'open', 'closed' or 'local'",
        ),
        (
            "rate_limits: {policies: {p: {count_by: user, limit: 1/s, per: 2}}}",
            "rate_limits.policies.p.per: unknown key",
        ),
        (
            "rate_limits: {policies: {'a:b': {count_by: user, limit: 1/s}}}",
            "rate_limits.policies: policy name 'a:b' must be non-empty, without ':'",
        ),
        (
            "rate_limits: {policies: {p: {count_by: ip, limit: 1/s}}, default_policies: [x]}",
            "rate_limits.default_policies: unknown rate-limit policy 'x' (known: p)",
        ),
        (
            "routes: [{prefix: /a, service: a, rate_limits: [nope]}]",
            "routes[0].rate_limits: unknown rate-limit policy 'nope' (known: none are defined)",
        ),
        ("rate_limits: {redis: {timeout: 0}}", "rate_limits.redis.timeout: must be longer than 0"),
        (
            "rate_limits: {redis: {url: 'http://redis:6379'}}",
            "rate_limits.redis.url: must start with redis:// or rediss://",
        ),
        (
            "rate_limits: {redis: {key_prefix: 'a{b'}}",
            "rate_limits.redis.key_prefix: key prefix must be non-empty and free of braces",
        ),
    ],
)
def test_mistakes_are_reported_with_their_key_path(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(yaml_text)
    assert f"invalid configuration in edge.yaml: {message}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("user", "user"),
        (" API_KEY ", "api_key"),
        ("Role", "role"),
        ("ip", "ip"),
        ("route", "route"),
        ("header:X-Tenant", "header:x-tenant"),
        ("HEADER: x-api-version ", "header:x-api-version"),
        ("claim:org_id", "claim:org_id"),
        ("claim:https://example.com/tenant", "claim:https://example.com/tenant"),
    ],
)
def test_dimensions_are_normalised(text: str, normal: str) -> None:
    assert parse_dimension(text) == normal


@pytest.mark.parametrize("text", ["", "users", "header:", "claim:", "header:a b", "cookie:sid"])
def test_unknown_dimensions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_dimension(text)
