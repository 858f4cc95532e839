"""Rate-limit settings of the edge: where Redis is, the named policies, the defaults.

A policy says what it counts by and how much it allows::

    rate_limits:
      redis: {url: redis://127.0.0.1:6379/0, timeout: 50ms}
      policies:
        per-user:
          count_by: user                  # or [user, route], ip, header:x-tenant, ...
          limit: 20/s burst 40            # everyone not listed below
          by_role: {admin: 200/s burst 400}
          by_plan: {free: 1/s burst 5}
          on_failure: local               # open | closed | local
      default_policies: [per-user]        # routes without their own rate_limits

Everything is checked at load: a bad rate, an unknown dimension or a policy
name nobody defined is reported with its key path
(``rate_limits.policies.per-user.limit: invalid rate '20/sec/s': ...``).
Which limit a caller gets, and the key it is counted under, is decided by
:mod:`edge.ratelimit.policies`; this module only describes and validates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.ratelimit.client import RedisSettings
from edge.ratelimit.keys import DEFAULT_PREFIX, check_prefix
from edge.ratelimit.limiter import FailureMode
from edge.ratelimit.rate import Rate, parse_rate
from edge.ratelimit.redis_limiter import RedisLimiterSettings
from mesh.config.types import Frozen, PositiveDuration, RedisUrl

UNLIMITED = "unlimited"
"""Written instead of a rate: the policy does not limit these callers at all."""

SIMPLE_DIMENSIONS = ("user", "api_key", "role", "ip", "route")
"""Dimensions named by one word; ``header:<name>`` and ``claim:<name>`` take a name."""

# RFC 9110 token characters, the only ones a header name may have.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CLAIM_NAME = re.compile(r"^\S+$")


def _rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a rate such as '100/s burst 200', got {value!r}")
    return parse_rate(value)


def _rate_or_unlimited(value: object) -> Rate | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == UNLIMITED):
        return None
    return _rate(value)


def _show(rate: Rate | None) -> str | None:
    return None if rate is None else str(rate)


def _show_tier(rate: Rate | None) -> str:
    return UNLIMITED if rate is None else str(rate)


RateText = Annotated[Rate, PlainValidator(_rate), PlainSerializer(str)]
"""A rate written as ``<count>/<unit> [burst <n>]`` (``100/s burst 200``, ``1000/min``)."""

OptionalRateText = Annotated[
    Rate | None, PlainValidator(_rate_or_unlimited), PlainSerializer(_show)
]
"""A rate, or ``null`` / ``unlimited`` for "no limit"."""

TierRateText = Annotated[
    Rate | None, PlainValidator(_rate_or_unlimited), PlainSerializer(_show_tier)
]
"""A per-role or per-plan rate; ``unlimited`` exempts that role or plan."""


def parse_dimension(text: str) -> str:
    """Normalise one ``count_by`` entry, or raise ValueError saying what is accepted.

    Fixed names and ``header:`` names are lower-cased (header names are
    case-insensitive); ``claim:`` names are kept as written (JSON is not).
    """
    raw = text.strip()
    lowered = raw.lower()
    if lowered in SIMPLE_DIMENSIONS:
        return lowered
    kind, sep, name = raw.partition(":")
    kind = kind.strip().lower()
    name = name.strip()
    if sep and kind == "header":
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header:{name} is not a valid header name")
        return f"header:{name.lower()}"
    if sep and kind == "claim":
        if not _CLAIM_NAME.match(name):
            raise ValueError(f"claim:{name} needs a claim name without spaces")
        return f"claim:{name}"
    raise ValueError(
        f"unknown dimension {text!r}: use {', '.join(SIMPLE_DIMENSIONS)}, "
        "header:<name> or claim:<name>, or a list of them"
    )


class RedisConfig(Frozen):
    """Where the buckets live, and how long a request may wait for them."""

    url: RedisUrl = "redis://127.0.0.1:6379/0"
    """``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS); for a
    cluster, any one node."""
    cluster: bool = False
    """Use the Redis Cluster client (keys of one caller share a hash slot)."""
    timeout: PositiveDuration = 0.05
    """Longest one round trip to Redis may take; beyond it, Redis counts as failed
    and every policy's ``on_failure`` applies until a background probe succeeds.
    Checks go out in batches, one in flight at a time, so a request waits at
    most for the batch ahead of it and then its own: twice this at worst."""
    probe_interval: PositiveDuration = 0.5
    """Pause between background probes while Redis is failed; also the
    Retry-After of ``closed`` refusals."""
    probe_timeout: PositiveDuration = 0.5
    """Deadline of one probe (no request waits on it)."""
    socket_timeout: PositiveDuration = 1.0
    """Backstop for connects and reads of the client itself."""
    max_connections: int = Field(default=64, ge=1)
    """Connections in the client's pool (per node on a cluster)."""
    key_prefix: str = DEFAULT_PREFIX
    """First part of every bucket key; share it between edges that share limits."""

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        check_prefix(value)
        return value

    def client_settings(self) -> RedisSettings:
        """The client's settings (:func:`edge.ratelimit.client.create_redis_client`)."""
        return RedisSettings(
            url=self.url,
            cluster=self.cluster,
            socket_timeout_s=self.socket_timeout,
            max_connections=self.max_connections,
        )

    def limiter_settings(self) -> RedisLimiterSettings:
        """The limiter's settings (:class:`edge.ratelimit.redis_limiter.RedisLimiter`)."""
        return RedisLimiterSettings(
            timeout_s=self.timeout,
            probe_interval_s=self.probe_interval,
            probe_timeout_s=self.probe_timeout,
            key_prefix=self.key_prefix,
        )


class PolicyConfig(Frozen):
    """One named limit: what it counts by, how much each kind of caller gets.

    Which rate applies to a caller: its API key's plan if ``by_plan`` lists it;
    else the most generous of its roles that ``by_role`` lists (anonymous
    callers have the role ``anonymous``); else ``limit``. ``null`` or
    ``unlimited`` means the policy does not limit that caller.
    """

    count_by: tuple[str, ...]
    """``user`` (the token's subject), ``api_key`` (the key's consumer),
    ``role``, ``ip`` (the client address), ``route``, ``header:<name>``,
    ``claim:<name>``, or a list: one bucket per combination. A caller lacking
    one of them (no token, no such header) is not counted by this policy."""
    limit: OptionalRateText = None
    """The rate of every caller ``by_role`` and ``by_plan`` do not cover."""
    by_role: dict[str, TierRateText] = Field(default_factory=dict)
    by_plan: dict[str, TierRateText] = Field(default_factory=dict)
    on_failure: FailureMode = FailureMode.LOCAL
    """While Redis is failed: ``open`` admits, ``closed`` refuses with 503,
    ``local`` limits in-process at the rate divided by the healthy edges."""

    @field_validator("count_by", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("count_by")
    @classmethod
    def _dimensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one dimension")
        dims = tuple(parse_dimension(d) for d in value)
        repeated = sorted({d for d in dims if dims.count(d) > 1})
        if repeated:
            raise ValueError(f"{repeated[0]} is listed twice")
        return dims

    @model_validator(mode="after")
    def _limits_something(self) -> PolicyConfig:
        if (
            self.limit is None
            and not any(r is not None for r in self.by_role.values())
            and not any(r is not None for r in self.by_plan.values())
        ):
            raise ValueError("limits nobody: give a limit, or a rate in by_role or by_plan")
        return self


class RateLimitsConfig(Frozen):
    """Global rate limits: Redis, named policies, and the policies of routes that name none."""

    redis: RedisConfig = RedisConfig()
    policies: dict[str, PolicyConfig] = Field(default_factory=dict)
    """Policy name → policy. The name is part of every bucket key, and is what
    responses, metrics and ``/ratelimits`` show."""
    default_policies: tuple[str, ...] = ()
    """Policies of every route without its own ``rate_limits`` (Consul-meta routes too)."""

    @field_validator("policies")
    @classmethod
    def _names(cls, value: dict[str, PolicyConfig]) -> dict[str, PolicyConfig]:
        for name in value:
            if not name or ":" in name or not name.isprintable() or " " in name:
                raise ValueError(
                    f"policy name {name!r} must be non-empty, without ':', spaces or control "
                    "characters"
                )
        return value

    @field_validator("default_policies")
    @classmethod
    def _defaults_exist(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        policies = info.data.get("policies")
        if policies is not None:  # else policies failed and is reported already
            unknown = [n for n in value if n not in policies]
            if unknown:
                raise ValueError(unknown_policy_message(unknown[0], policies))
        return value

    @property
    def enabled(self) -> bool:
        """True when any policy is defined (else the edge needs no Redis)."""
        return bool(self.policies)

    def check_names(self, names: tuple[str, ...]) -> None:
        """Raise ValueError naming the first of ``names`` that is not a policy."""
        for name in names:
            if name not in self.policies:
                raise ValueError(unknown_policy_message(name, self.policies))


def unknown_policy_message(name: str, policies: Mapping[str, object]) -> str:
    """What to say about a policy name that is not defined."""
    known = ", ".join(sorted(policies)) or "none are defined"
    return f"unknown rate-limit policy {name!r} (known: {known})"
