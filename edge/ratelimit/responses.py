"""What a limited request's response says: RateLimit-* headers and the refusal problems.

Headers follow the IETF draft "RateLimit header fields for HTTP"
(draft-ietf-httpapi-ratelimit-headers-07), read for token buckets:

* ``RateLimit-Limit``: the capacity (burst) of the limit closest to exhaustion
  (the refusing one on a refusal); ``RateLimit-Remaining``: its whole tokens
  left, so Remaining never exceeds Limit.
* ``RateLimit-Reset``: whole seconds until that bucket is full again; on a
  refusal, until the request would fit, which is exactly ``Retry-After``.
* ``RateLimit-Policy``: every limit that applied, as the draft's quota
  policies with two extension parameters: ``<quota>;w=<window
  seconds>;burst=<burst>;policy="<name>"``, the rate as configured
  (``1000/min burst 50`` is ``1000;w=60;burst=50;policy="per-user"``).

While Redis is failed every response also carries ``X-RateLimit-Degraded``
naming who decided instead: ``local`` (in-process buckets), ``open`` or
``closed`` (the failure modes), or ``cache`` (a bucket known to be empty).
``open`` and ``closed`` decisions look at no bucket, so they carry only
``RateLimit-Policy``.

Problem bodies name the policy, what it counts by, its limit and when to
retry, never the key (which would reveal the caller's identity or token).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from multidict import istr

from edge.ratelimit.limiter import LimitPolicy, LimitRequest, LimitResult, whole_seconds

# Names as multidict's istr, as aiohttp's own header names are: the response's
# case-insensitive headers then need not fold them on every request. An istr is a
# str, equal to the same text.
DEGRADED_HEADER = istr("X-RateLimit-Degraded")
LIMIT = istr("RateLimit-Limit")
REMAINING = istr("RateLimit-Remaining")
RESET = istr("RateLimit-Reset")
POLICY = istr("RateLimit-Policy")
RETRY_AFTER = istr("Retry-After")

CountsBy = Callable[[str], Sequence[str]]
"""Policy name → the dimensions it counts by."""


Header = tuple[str, str]
"""One response header, name and value (immutable: cached ones are shared)."""

Headers = tuple[Header, ...]
"""A response's rate-limit headers, in order (immutable: cached ones are shared)."""

_CACHED_NUMBERS = 4096
"""Header values below this (remaining tokens, seconds to reset) are kept once made."""

_CACHED_POLICIES = 1024
"""Most policies whose headers are kept; more (never from a configuration) start over."""


def policy_item(limit: LimitRequest) -> str:
    """One RateLimit-Policy item: ``<quota>;w=<window>;burst=<burst>;policy="<name>"``."""
    return _policy_item(limit.policy)


_CACHED_SETS = 4096
"""Most header sets of admitted one-limit checks kept per policy; more start over."""


class _HeaderCache:
    """The header tuples of repeated values, made once: every admitted request sends four.

    Policies are looked up by identity: hashing a LimitPolicy (a dataclass
    holding a Rate) costs more than formatting its header. An entry holds its
    policy, so that no other object can take its id while it is kept.
    """

    def __init__(self) -> None:
        # Read directly by rate_limit_headers' common case; filled only through the methods.
        self.policies: dict[int, tuple[LimitPolicy, Header, Header]] = {}
        self.remainings: dict[int, Header] = {}
        self.resets: dict[int, Header] = {}
        # id(policy) -> (policy, (remaining, reset seconds, degraded source or "") -> the
        # whole header set of an admitted one-limit check): the common case made once.
        self.admitted: dict[int, tuple[LimitPolicy, dict[tuple[int, int, str], Headers]]] = {}

    def limit(self, policy: LimitPolicy) -> Header:
        """``RateLimit-Limit`` for a bucket of ``policy``: its burst."""
        return self.entry(policy)[1]

    def policy(self, policy: LimitPolicy) -> Header:
        """``RateLimit-Policy`` of a request drawing only from ``policy``."""
        return self.entry(policy)[2]

    def remaining(self, tokens: int) -> Header:
        """``RateLimit-Remaining: <tokens>``."""
        return _number(self.remainings, REMAINING, tokens)

    def reset(self, seconds: int) -> Header:
        """``RateLimit-Reset: <seconds>``."""
        return _number(self.resets, RESET, seconds)

    def entry(self, policy: LimitPolicy) -> tuple[LimitPolicy, Header, Header]:
        """``(policy, RateLimit-Limit, RateLimit-Policy of policy alone)``, made once."""
        entry = self.policies.get(id(policy))
        if entry is None:
            if len(self.policies) >= _CACHED_POLICIES:
                self.policies.clear()
            entry = self.policies[id(policy)] = (
                policy,
                (LIMIT, str(policy.rate.burst)),
                (POLICY, _policy_item(policy)),
            )
        return entry

    def admitted_sets(self, policy: LimitPolicy) -> dict[tuple[int, int, str], Headers]:
        """The header sets of admitted one-limit checks of ``policy``, by their values."""
        entry = self.admitted.get(id(policy))
        if entry is None:
            if len(self.admitted) >= _CACHED_POLICIES:
                self.admitted.clear()
            entry = self.admitted[id(policy)] = (policy, {})
        return entry[1]

    def admitted_set(
        self, policy: LimitPolicy, remaining: int, seconds: int, degraded: str
    ) -> Headers:
        """The headers of an admitted check of one ``policy`` limit, made once per values.

        ``degraded``: the ``X-RateLimit-Degraded`` value, "" when not degraded.
        """
        sets = self.admitted_sets(policy)
        key = (remaining, seconds, degraded)
        headers = sets.get(key)
        if headers is None:
            _, limit, item = self.entry(policy)
            made = [limit, self.remaining(remaining), self.reset(seconds), item]
            if degraded:
                made.append((DEGRADED_HEADER, degraded))
            if len(sets) >= _CACHED_SETS:
                sets.clear()  # past the working set: start over rather than track recency
            headers = sets[key] = tuple(made)
        return headers


def _number(cache: dict[int, Header], name: str, value: int) -> Header:
    header = cache.get(value)
    if header is None:
        header = (name, str(value))
        if 0 <= value < _CACHED_NUMBERS:
            cache[value] = header
    return header


_HEADERS = _HeaderCache()

_DEGRADED: dict[str, Header] = {
    source: (DEGRADED_HEADER, "cache" if source == "redis" else source)
    for source in ("redis", "local", "open", "closed")
}
"""``X-RateLimit-Degraded`` by result source (a known-empty refusal is ``cache``)."""


@lru_cache(maxsize=1024)
def _policy_item(policy: LimitPolicy) -> str:
    rate = policy.rate
    quota = rate.quota
    quota_text = str(int(quota)) if quota == int(quota) else f"{quota:g}"
    window = whole_seconds(rate.period_s)
    return f'{quota_text};w={window};burst={rate.burst};policy="{policy.name}"'


@lru_cache(maxsize=1024)
def _policy_header(policies: tuple[LimitPolicy, ...]) -> str:
    return ", ".join(_policy_item(p) for p in policies)


_DEGRADED_VALUE: dict[str, str] = {source: value for source, (_, value) in _DEGRADED.items()}
"""The ``X-RateLimit-Degraded`` value by result source."""


def rate_limit_headers(result: LimitResult) -> Sequence[Header]:
    """The RateLimit-* (and, when refused or degraded, Retry-After and degraded) headers."""
    known = result.headers
    if known is not None:
        return known
    requests = result.requests
    outcomes = result.outcomes
    if result.allowed and len(outcomes) == 1 and len(requests) == 1:
        # The common case, one limit admitted (by Redis, or locally while it is down):
        # its whole header set is made once per (remaining, reset) and then looked up.
        outcome = outcomes[0]
        policy = outcome.request.policy
        if requests[0].policy is policy:
            entry = _HEADERS.admitted.get(id(policy))
            sets = entry[1] if entry is not None else _HEADERS.admitted_sets(policy)
            seconds = whole_seconds(outcome.reset_after_s)
            degraded = _DEGRADED_VALUE[result.source] if result.degraded else ""
            headers = sets.get((outcome.remaining, seconds, degraded))
            if headers is None:
                headers = _HEADERS.admitted_set(policy, outcome.remaining, seconds, degraded)
            result.headers = headers
            return headers
    return _headers(result)


def _headers(result: LimitResult) -> list[tuple[str, str]]:
    """:func:`rate_limit_headers` in general."""
    headers: list[Header] = []
    requests = result.requests
    cache = _HEADERS
    if result.allowed:
        outcomes = result.outcomes
        # The one closest to exhaustion (LimitResult.binding, without its generality).
        binding = outcomes[0] if len(outcomes) == 1 else result.binding
        if binding is not None:
            headers.append(cache.limit(binding.request.policy))
            headers.append(cache.remaining(binding.remaining))
            headers.append(cache.reset(whole_seconds(binding.reset_after_s)))
    else:
        retry = str(result.retry_after_seconds)
        refused = result.refused_by
        if refused is not None:
            headers.append(cache.limit(refused.request.policy))
            headers.append(cache.remaining(refused.remaining))
            headers.append((RESET, retry))  # agrees with Retry-After
        headers.append((RETRY_AFTER, retry))
    if requests:
        # Policies are few and fixed by the config: the header text is computed once each.
        if len(requests) == 1:
            headers.append(cache.policy(requests[0].policy))
        else:
            headers.append((POLICY, _policy_header(tuple(r.policy for r in requests))))
    if result.degraded:
        headers.append(_DEGRADED[result.source])
    return headers


def too_many_requests(result: LimitResult, counts_by: CountsBy) -> dict[str, Any]:
    """The 429 problem's fields: ``title``, ``detail`` and extension members.

    Names the refusing limit (the one that takes longest to have room).
    """
    refused = result.refused_by
    retry = result.retry_after_seconds
    if refused is None:  # a refusal always names its limit; be safe anyway
        return {
            "title": "Too many requests",
            "detail": f"a rate limit is exhausted; retry in {retry} s",
            "extra": {"retry_after": retry},
        }
    policy = refused.request.policy
    dims = list(counts_by(policy.name))
    return {
        "title": "Too many requests",
        "detail": (
            f"rate limit {policy.name!r} ({policy.rate}, counted by {' + '.join(dims)}) "
            f"is exhausted; retry in {retry} s"
        ),
        "extra": {
            "policy": policy.name,
            "counts_by": dims,
            "limit": str(policy.rate),
            "retry_after": retry,
        },
    }


def limits_unavailable(result: LimitResult) -> dict[str, Any]:
    """The 503 problem's fields, for ``closed`` policies while Redis is failed."""
    closed = sorted({r.policy.name for r in result.requests if r.policy.on_failure == "closed"})
    retry = result.retry_after_seconds
    names = ", ".join(repr(n) for n in closed)
    return {
        "title": "Rate limits unavailable",
        "detail": (
            f"the rate-limit store is failing and policy {names} refuses requests "
            f"until it is back (on_failure: closed); retry in {retry} s"
        ),
        "extra": {"policies": closed, "retry_after": retry},
    }


def problem_fields(result: LimitResult, counts_by: CountsBy) -> Mapping[str, Any]:
    """The problem of a refused ``result``: 429 or 503 (see :attr:`LimitResult.status`)."""
    if result.status == 503:
        return limits_unavailable(result)
    return too_many_requests(result, counts_by)
