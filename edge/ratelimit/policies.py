"""From the configured policies to the buckets one request draws from (no I/O).

For each policy that applies to a route, :meth:`PolicyBook.limits` decides:

* **the rate**: the caller's API-key plan if ``by_plan`` names it; else the
  most generous rate among the caller's roles that ``by_role`` names
  (``unlimited`` beats any rate); else ``limit``. No rate means the policy
  does not limit this caller.
* **the key**: one part per dimension the policy counts by, joined with ``|``
  (``user=3f2a…|route=orders``). Values that come from the caller (subject,
  API-key consumer, IP, header and claim values) are hashed, so neither a
  secret nor personal data ever reaches Redis, and every key has a bounded
  length; route and role names come from the configuration and stay
  readable. A caller lacking a dimension (no user, no such header) is not
  counted by that policy.
* **the partition** (Redis Cluster slot): the first caller dimension of the
  key, in the order user, api_key, ip, claim, header. The per-caller limits
  of one request therefore share a slot and are checked by one atomic script;
  limits shared by everyone (a route's total) get their own slot, and the
  limiter refunds across slots (:mod:`edge.ratelimit.redis_limiter`).

Every caller-dependent choice is a function of the policy and the key, so one
bucket always gets the same Redis key and slot, whichever request touches it.
The rate may differ between callers sharing a bucket (per-role rates on a
``role`` or ``route`` key): the bucket follows the rate of each request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from hashlib import blake2b
from typing import Any

from edge.ratelimit.caller import ANONYMOUS, ANONYMOUS_ROLE, Caller, caller_of
from edge.ratelimit.config import PolicyConfig, RateLimitsConfig
from edge.ratelimit.limiter import LimitPolicy, LimitRequest
from edge.ratelimit.rate import Rate
from edge.routes import Route

_CALLER_DIMENSIONS = ("user", "api_key", "ip", "claim:", "header:")
"""Dimensions that identify a caller, in the order they choose the partition."""

_MAX_CACHED_REQUESTS = 32768
"""Most LimitRequests one policy keeps for reuse (see :meth:`Policy.limit_for`)."""
_EVICTED_SHARE = 8
"""A full cache of LimitRequests drops its oldest 1/8th (see :func:`evict_oldest`)."""

_MAX_CACHED_ROUTES = 1024
"""Most routes whose policies :meth:`PolicyBook.for_route` keeps."""

# What a dimension reads, decided once per policy rather than by string tests per request.
_USER, _API_KEY, _IP, _ROUTE, _ROLE, _HEADER, _CLAIM = range(7)
_KINDS = {"user": _USER, "api_key": _API_KEY, "ip": _IP, "route": _ROUTE, "role": _ROLE}
_PER_REQUEST = (_IP, _HEADER)
"""Dimensions that can differ between two anonymous requests to the same route."""


_MAX_HASHED = 65536
"""Most values whose hashes :func:`hashed` keeps."""

_hashes: dict[str, str] = {}


def hashed(value: str) -> str:
    """24 hex digits standing for ``value`` in keys (BLAKE2b, 96 bits: collisions are moot).

    Kept for the callers seen lately in a plain dictionary that starts over when
    full: a hit is one look-up (about half of lru_cache's), and a miss (a new
    caller: with many callers, most requests) skips lru_cache's recency
    bookkeeping, about 0.6 us.
    """
    digest = _hashes.get(value)
    if digest is None:
        if len(_hashes) >= _MAX_HASHED:
            _hashes.clear()
        digest = _hashes[value] = _digest(value)
    return digest


def _digest(value: str) -> str:
    """:func:`hashed` without the cache."""
    return blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def evict_oldest(made: dict[str, LimitRequest] | dict[str, tuple[LimitRequest]]) -> None:
    """Make room in a full cache of LimitRequests (or of tuples of them): drop the oldest
    :data:`_EVICTED_SHARE`-th of its entries (dicts keep the order they were filled in),
    each request unlinked first (:meth:`LimitRequest.unlink`).

    Starting over instead (``clear()``) left every dropped request and its memo to
    the garbage collector: with a new bucket on every request, 65,536 requests at a
    time, about 330,000 objects in reference cycles, which one collection freed in
    190-260 ms with the event loop stopped (``edge+ratelimit-newkey``'s p99, 130-230
    ms in some runs). Unlinked, they are freed as they are dropped, an eighth at a time.
    """
    for key in list(made)[: max(1, len(made) // _EVICTED_SHARE)]:
        dropped = made.pop(key)
        if type(dropped) is tuple:
            for limit in dropped:
                limit.unlink()
        else:
            dropped.unlink()  # type: ignore[union-attr]


class Policy:
    """One configured policy, compiled: its dimensions and one LimitPolicy per rate tier.

    Every tier shares the policy's name, hence its buckets: a user whose plan
    changes keeps the tokens already taken.
    """

    __slots__ = (
        "_anonymous",
        "_made",
        "_parts",
        "anonymous_fixed",
        "anonymous_limits",
        "anonymous_source",
        "by_plan",
        "by_role",
        "config",
        "default",
        "dimensions",
        "name",
        "on_failure",
        "partition_at",
    )

    def __init__(self, name: str, config: PolicyConfig) -> None:
        self.name = name
        self.config = config
        self.dimensions = config.count_by
        # Per dimension: what it reads (_USER, ...), what follows its colon (a header or
        # claim name, else ""), and the key part's "<dimension>=" - worked out once.
        self._parts = tuple((_kind(d), d.partition(":")[2], f"{d}=") for d in self.dimensions)
        # id of the tier -> key -> the LimitRequest made for it; tiers live as long as self.
        # Nested rather than keyed by (id, key): no tuple to build and hash per request.
        self._made: dict[int, dict[str, LimitRequest]] = {}
        self.on_failure = config.on_failure
        # The key part that names the partition: the first caller dimension, if any.
        ranks = [_caller_rank(d) for d in self.dimensions]
        best = min(ranks)
        self.partition_at: int | None = (
            ranks.index(best) if best < len(_CALLER_DIMENSIONS) else None
        )
        tiers: dict[Rate, LimitPolicy] = {}

        def tier(rate: Rate | None) -> LimitPolicy | None:
            if rate is None:
                return None
            if rate not in tiers:
                tiers[rate] = LimitPolicy(name, rate, config.on_failure)
            return tiers[rate]

        self.default = tier(config.limit)
        self.by_role = {role: tier(rate) for role, rate in config.by_role.items()}
        self.by_plan = {plan: tier(rate) for plan, rate in config.by_plan.items()}
        # The anonymous caller's tier, asked for by every anonymous request.
        self._anonymous = self.tier_for(ANONYMOUS)
        self.anonymous_fixed = all(kind not in _PER_REQUEST for kind, _, _ in self._parts)
        """For an anonymous caller the bucket depends on the route alone (no ``ip`` or
        ``header:`` dimension; the caller's own dimensions are absent, its role fixed)."""
        # An anonymous caller counted by one ``ip`` or ``header:`` dimension alone: its
        # bucket is a function of that one value (the route's name plays no part), so
        # PolicyBook.limits_for finds it by the raw value, without hashing or building
        # the key (see anonymous_limits).
        self.anonymous_source: tuple[int, str] | None = None
        """``(_IP or _HEADER, header name or "")`` when the above holds, else None."""
        if self._anonymous[0] is not None and len(self._parts) == 1:
            kind, name, _ = self._parts[0]
            if kind in _PER_REQUEST:
                self.anonymous_source = (kind, name)
        self.anonymous_limits: dict[str, tuple[LimitRequest]] = {}
        """Raw value of :attr:`anonymous_source` -> the buckets of an anonymous request
        with that value (the one LimitRequest :meth:`limit_for` gives), up to
        :data:`_MAX_CACHED_REQUESTS`; filled by :meth:`PolicyBook.limits_for`."""

    def tier_for(self, caller: Caller) -> tuple[LimitPolicy | None, str | None]:
        """The limit ``caller`` gets (None: not limited) and the role that chose it, if any."""
        if caller.plan is not None and caller.plan in self.by_plan:
            return self.by_plan[caller.plan], None
        best: LimitPolicy | None = None
        best_role: str | None = None
        matched = False
        for role in caller.roles:
            if role not in self.by_role:
                continue
            candidate = self.by_role[role]
            if candidate is None:
                return None, role  # unlimited is the most generous of all
            if not matched or _more_generous(candidate.rate, best):
                best, best_role, matched = candidate, role, True
        if matched:
            return best, best_role
        return self.default, None

    def limit_for(
        self, caller: Caller, client_ip: str, route: str, headers: Mapping[str, str]
    ) -> LimitRequest | None:
        """The bucket this request draws from under this policy; None if it is not counted.

        What a key may be made of: the caller, the client address, the route's
        name, and ``headers``, the request headers as the edge forwards them
        (spoofed identity headers already removed).

        A bucket asked for again gets the same (immutable) LimitRequest, up to
        :data:`_MAX_CACHED_REQUESTS` of them: a busy caller or route costs one
        dictionary look-up instead of building and validating a new one.
        """
        policy, role = self._anonymous if caller is ANONYMOUS else self.tier_for(caller)
        if policy is None:
            return None
        at = self.partition_at
        parts = self._parts
        if len(parts) == 1:  # most policies count by one dimension: no list, no join
            kind, name, head = parts[0]
            if kind == _ROUTE:  # _part's first cases, written out (one call less)
                value: str | None = route
            elif kind == _HEADER:
                header = headers.get(name)
                value = hashed(header) if header else None
            else:
                value = _part(kind, name, caller, client_ip, route, headers, role)
            if value is None:
                return None
            key = head + value
            partition = None if at is None else key
        else:
            values: list[str] = []
            for kind, name, head in parts:
                value = _part(kind, name, caller, client_ip, route, headers, role)
                if value is None:
                    return None
                values.append(head + value)
            key = "|".join(values)
            partition = None if at is None else values[at]
        # The tier's id stands for the tier: hashing a LimitPolicy costs more than the look-up.
        made = self._made.get(id(policy))
        found = made.get(key) if made is not None else None
        return found if found is not None else self._remember(policy, key, partition)

    def _remember(self, policy: LimitPolicy, key: str, partition: str | None) -> LimitRequest:
        """A new LimitRequest for ``key`` under ``policy`` (a tier of this policy), kept for
        :meth:`limit_for` and :meth:`limit_of_value`, which look it up first."""
        made = self._made.get(id(policy))
        if made is None:
            made = self._made[id(policy)] = {}
        limit = LimitRequest(policy, key, 1, partition)  # positional: no keyword dict
        if len(made) >= _MAX_CACHED_REQUESTS:
            evict_oldest(made)  # past the working set: the oldest go, not every one
        made[key] = limit
        return limit

    def limit_of_value(self, raw: str) -> LimitRequest:
        """:meth:`limit_for` of an anonymous caller whose :attr:`anonymous_source` value is
        ``raw`` (non-empty); only for a policy that has one.

        The same LimitRequest as :meth:`limit_for` gives, but the value is hashed
        without :func:`hashed`'s cache: :meth:`PolicyBook.limits_for` keeps the
        buckets of these callers by raw value, so a cached digest would only be
        one more object per caller to keep (and for the collector to visit).
        """
        policy = self._anonymous[0]
        if policy is None or self.anonymous_source is None:
            raise ValueError(f"policy {self.name!r} does not count anonymous callers by one value")
        key = self._parts[0][2] + _digest(raw)
        made = self._made.get(id(policy))
        found = made.get(key) if made is not None else None
        if found is not None:
            return found
        return self._remember(policy, key, None if self.partition_at is None else key)

    def describe(self) -> dict[str, Any]:
        """The policy as configured, for ``/ratelimits``."""
        return {
            "counts_by": list(self.dimensions),
            "limit": _show(self.default),
            "by_role": {role: _show(p) for role, p in self.by_role.items()},
            "by_plan": {plan: _show(p) for plan, p in self.by_plan.items()},
            "on_failure": self.on_failure.value,
        }


class PolicyBook:
    """Every configured policy, the default ones, and which apply to a route.

    A route's ``options["rate_limits"]`` (from ``RouteConfig.rate_limits``)
    names its policies; a route without it (including routes declared in
    Consul meta) has the default policies, and an empty list turns limits off
    for that route.
    """

    def __init__(self, config: RateLimitsConfig) -> None:
        self.config = config
        self.policies: dict[str, Policy] = {
            name: Policy(name, policy) for name, policy in config.policies.items()
        }
        self.defaults = self._select(config.default_policies)
        self._by_names: dict[tuple[str, ...], tuple[Policy, ...]] = {}
        # Keyed by id(route), holding the route so that the id cannot be reused meanwhile.
        self._by_route: dict[int, tuple[Route, tuple[Policy, ...]]] = {}
        # id(route) -> (route, the buckets of every anonymous request to it, the route's
        # one policy): the buckets for routes whose policies all have anonymous_fixed (the
        # same answer for every such request), else None; the policy when the route has
        # exactly one and it has an anonymous_source (its buckets found by raw value),
        # else None.
        self._anonymous_by_route: dict[
            int, tuple[Route | None, Sequence[LimitRequest] | None, Policy | None]
        ] = {}

    def names_for(self, route: Route | None) -> tuple[str, ...]:
        """The policy names that apply to ``route`` (the defaults when it names none)."""
        if route is None:
            return self.config.default_policies
        names = route.options.get("rate_limits")
        if names is None:
            return self.config.default_policies
        return tuple(names)

    def for_route(self, route: Route | None) -> tuple[Policy, ...]:
        """The policies that apply to ``route``, in the order they are named."""
        if route is None:
            return self.defaults
        cached = self._by_route.get(id(route))
        if cached is not None:
            return cached[1]
        names = self.names_for(route)
        found = self._by_names.get(names)
        if found is None:
            found = self._by_names[names] = self._select(names)
        if len(self._by_route) >= _MAX_CACHED_ROUTES:
            self._by_route.clear()  # routes are rebuilt per catalog snapshot; old ones go
        self._by_route[id(route)] = (route, found)
        return found

    def limits(
        self,
        policies: Iterable[Policy],
        caller: Caller,
        client_ip: str,
        route: str,
        headers: Mapping[str, str],
    ) -> list[LimitRequest]:
        """The buckets of this request under ``policies`` (policies not counting it left out).

        The arguments are those of :meth:`Policy.limit_for`.
        """
        out = []
        for policy in policies:
            limit = policy.limit_for(caller, client_ip, route, headers)
            if limit is not None:
                out.append(limit)
        return out

    def limits_for(
        self,
        route: Route | None,
        identity: object,
        client_ip: str,
        headers: Mapping[str, str],
    ) -> Sequence[LimitRequest]:
        """The buckets of one request on ``route``: :meth:`for_route`, then :meth:`limits`.

        ``identity`` is the auth feature's (see :func:`~edge.ratelimit.caller.caller_of`),
        None for an anonymous caller. The sequence is the caller's to read, not to
        change: an anonymous request to a route whose buckets depend on the route
        alone (a per-route total) gets the one sequence made for that route.
        """
        known = self._anonymous_by_route.get(id(route)) if identity is None else None
        if known is not None:
            if known[1] is not None:
                return known[1]
            single = known[2]
            if single is not None:
                # Many anonymous callers told apart by one header (or address): one
                # look-up by the raw value stands for hashing it and building the key.
                kind, header = single.anonymous_source  # type: ignore[misc]
                raw = client_ip if kind == _IP else headers.get(header)
                if not raw:
                    return ()  # limit_for does not count a caller lacking the dimension
                found = single.anonymous_limits.get(raw)
                if found is not None:
                    return found
                return self._anonymous_limit(single, raw)
        policies = self.for_route(route)
        if not policies:
            return ()
        caller = ANONYMOUS if identity is None else caller_of(identity)
        name = route.name if route is not None else ""
        limits = self.limits(policies, caller, client_ip, name, headers)
        if identity is None and known is None:
            # First anonymous request to this route: is its answer the same for all?
            fixed = tuple(limits) if all(p.anonymous_fixed for p in policies) else None
            single = (
                policies[0]
                if fixed is None and len(policies) == 1 and policies[0].anonymous_source
                else None
            )
            if len(self._anonymous_by_route) >= _MAX_CACHED_ROUTES:
                self._anonymous_by_route.clear()  # as in for_route
            self._anonymous_by_route[id(route)] = (route, fixed, single)
            if fixed is not None:
                return fixed
        return limits

    def _anonymous_limit(self, policy: Policy, raw: str) -> Sequence[LimitRequest]:
        """:meth:`limits_for` of an anonymous caller not yet in ``policy.anonymous_limits``.

        ``raw`` is the value of the policy's ``anonymous_source`` in this request.
        """
        found = (policy.limit_of_value(raw),)
        made = policy.anonymous_limits
        if len(made) >= _MAX_CACHED_REQUESTS:
            evict_oldest(made)  # past the working set: the oldest go, not every one
        made[raw] = found
        return found

    def roles(self) -> list[str]:
        """The roles any policy names, ``anonymous`` first, for the admin view."""
        named = {role for p in self.policies.values() for role in p.by_role}
        return [ANONYMOUS_ROLE, *sorted(named - {ANONYMOUS_ROLE})]

    def plans(self) -> list[str]:
        """The plans any policy names, for the admin view."""
        return sorted({plan for p in self.policies.values() for plan in p.by_plan})

    def _select(self, names: Sequence[str]) -> tuple[Policy, ...]:
        # Names are checked at load (RateLimitsConfig, EdgeConfig); a stray one is skipped.
        return tuple(self.policies[n] for n in names if n in self.policies)


def _more_generous(rate: Rate, than: LimitPolicy | None) -> bool:
    if than is None:
        return True
    return (rate.per_second, rate.burst) > (than.rate.per_second, than.rate.burst)


def _caller_rank(dim: str) -> int:
    for rank, prefix in enumerate(_CALLER_DIMENSIONS):
        if dim == prefix or (prefix.endswith(":") and dim.startswith(prefix)):
            return rank
    return len(_CALLER_DIMENSIONS)


def _kind(dim: str) -> int:
    if dim in _KINDS:
        return _KINDS[dim]
    if dim.startswith("header:"):
        return _HEADER
    if dim.startswith("claim:"):
        return _CLAIM
    raise ValueError(f"unknown dimension {dim!r}")  # parse_dimension admits no other


def _part(
    kind: int,
    name: str,
    caller: Caller,
    client_ip: str,
    route: str,
    headers: Mapping[str, str],
    role: str | None,
) -> str | None:
    """The key part of one dimension for this request, None when the request lacks it.

    ``name`` is the header or claim name of a ``header:`` or ``claim:`` dimension.
    """
    if kind == _ROUTE:
        return route
    if kind == _HEADER:
        header = headers.get(name)
        return hashed(header) if header else None
    if kind == _IP:
        return hashed(client_ip) if client_ip else None
    if kind == _USER:
        return hashed(caller.subject) if caller.subject is not None else None
    if kind == _API_KEY:
        return hashed(caller.consumer) if caller.consumer is not None else None
    if kind == _ROLE:
        # The role that chose the rate; else all of the caller's roles, in order.
        return role if role is not None else ",".join(sorted(caller.roles)) or ANONYMOUS_ROLE
    claim = caller.claims.get(name)  # _CLAIM
    if claim is None or claim == "":
        return None
    text = claim if isinstance(claim, str) else json.dumps(claim, sort_keys=True)
    return hashed(text)


def _show(policy: LimitPolicy | None) -> str:
    return "unlimited" if policy is None else str(policy.rate)
