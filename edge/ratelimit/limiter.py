"""What every limiter takes and returns, and the protocol they share.

A request is subject to zero or more limits (:class:`LimitRequest`), each a
bucket named by a policy and a key (``per-user`` / ``alice``). A limiter checks
all of them at once and takes tokens from all or none (:class:`LimitResult`).
The Redis limiter and the in-process one both implement :class:`Limiter`, so the
HTTP filter does not care which one answers.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from edge.ratelimit.rate import Rate

Source = Literal["redis", "local", "open", "closed"]
"""Who decided: Redis (global, exact), the in-process fallback, or a failure mode."""

# Float noise (2.0000000001 s) must not become a whole extra second in a header.
_CEIL_SLACK = 1e-9


class FailureMode(StrEnum):
    """What a policy does while Redis is unusable (down, refusing, or too slow)."""

    OPEN = "open"
    """Admit everything: availability over limits."""
    CLOSED = "closed"
    """Refuse everything with 503: limits over availability."""
    LOCAL = "local"
    """Enforce the limit in-process, each edge taking 1/N of it (N healthy edges)."""


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """A named limit with its rate and its behaviour when Redis fails.

    ``name`` is part of every bucket's Redis key, so two policy objects with the
    same name share buckets (that is how a per-plan rate can apply to one
    per-user bucket). It must be non-empty and must not contain ``:``, the key
    separator.
    """

    name: str
    rate: Rate
    on_failure: FailureMode = FailureMode.LOCAL

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ValueError(f"policy name must be non-empty and free of ':', got {self.name!r}")


@dataclass(slots=True, unsafe_hash=True)
class LimitRequest:
    """One bucket a request must draw from: ``cost`` tokens of ``policy`` for ``key``.

    Its four fields are read-only by contract (never changed once made), like
    :class:`LimitOutcome`: one is made for every bucket seen for the first
    time, which for many distinct callers is most requests, and a frozen
    dataclass costs several times as much to build. The fields after them
    (``owner`` ... ``memo``) are no part of the request: the Redis limiter's
    state of the bucket, kept on the object that policies hand out again for
    the same bucket.

    ``partition`` decides the Redis Cluster slot (the key's hash tag). Limits of
    one request with the same partition are checked in one atomic script on
    Cluster; on a single Redis every request's limits are atomic whatever the
    partition. The partition must be a function of (policy, key): the same
    bucket must always be given the same partition, or it splits into several.
    Use the caller's identity (user, API key, client IP) for every per-caller
    limit of a request; ``None`` makes the bucket its own partition, right for
    limits shared by all callers (a per-route total).

    ``cost`` is 0 (look without taking) up to the policy's burst.
    """

    policy: LimitPolicy
    key: str
    cost: int = 1
    partition: str | None = None
    # The rest is not part of the request (not compared, hashed, shown, or copied by
    # replace): what the Redis limiter keeps of this bucket, on the bucket's own object,
    # so that a check of a bucket seen before reaches all of it through the request it
    # already holds, without a look-up of its own (with many callers, every look-up and
    # every object a check touches is likely a cache miss). Set only by that limiter.
    owner: object = field(default=None, init=False, repr=False, compare=False, hash=False)
    """The limiter that set the fields below (None: none did); another one makes its own."""
    packed: bytes = field(default=b"", init=False, repr=False, compare=False, hash=False)
    """The bucket's Redis key as a RESP bulk string, as ``owner`` sends it."""
    argv: bytes = field(default=b"", init=False, repr=False, compare=False, hash=False)
    """The ARGV of a script call checking this bucket alone, as a RESP bulk string."""
    memo_text: bytes | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    """The level text of the reply ``memo`` was made from (see ``RedisLimiter._result_one``)."""
    memo: LimitResult | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    """The latest result of a check of this bucket alone, shared while Redis answers the same."""

    def unlink(self) -> None:
        """Drop the limiter's state that refers back to this request (``memo``).

        ``memo`` is a LimitResult whose outcomes name this request: a reference
        cycle, which reference counting cannot free. A cache that lets go of a
        request calls this first, so that the request and its memo are freed at
        once rather than left to the garbage collector (see
        :func:`edge.ratelimit.policies.evict_oldest`). The limiter makes a new
        memo at the next check of the bucket, if the request is still in use.
        """
        self.memo = None

    def __post_init__(self) -> None:
        if isinstance(self.cost, bool) or not isinstance(self.cost, int):
            raise ValueError(f"cost must be a whole number, got {self.cost!r}")
        if not 0 <= self.cost <= self.policy.rate.burst:
            raise ValueError(
                f"cost {self.cost} of policy {self.policy.name!r} must be between 0 and "
                f"its burst {self.policy.rate.burst}"
            )


# LimitOutcome and LimitResult: one of each per request, and a frozen dataclass
# costs about three times as much to build (a call of object.__setattr__ per
# field). They are not frozen but read-only by contract: nothing changes one
# once it is made. unsafe_hash keeps them hashable and equal as frozen ones were.


@dataclass(slots=True, unsafe_hash=True)
class LimitOutcome:
    """One limit's state after a check (read-only: never changed once made).

    ``allowed``: this limit alone had room for the request. ``remaining``: whole
    tokens left. ``reset_after_s``: seconds until the bucket is full again.
    ``retry_after_s``: 0 if ``allowed``, else seconds until it has room.
    """

    request: LimitRequest
    allowed: bool
    remaining: int
    reset_after_s: float
    retry_after_s: float


@dataclass(slots=True, unsafe_hash=True)
class LimitResult:
    """The answer to one check (read-only: never changed once made).

    ``allowed``: tokens were taken from every limit (always True for an empty
    check). ``source``: who decided. ``degraded``: Redis was unusable at the
    time (the answer came from a failure mode or the local fallback; a refusal
    from the known-empty cache can also be ``degraded``). ``requests``: the
    limits checked, in order. ``outcomes``: the state of the limits that were
    looked at - all of them for a ``redis`` or ``local`` answer, only the
    refusing ones for a refusal from the known-empty cache (``cached``), the
    ``local`` ones when open and local policies were mixed, none for ``open`` or
    ``closed``. ``retry_after_s``: 0 when allowed; for a refusal, seconds until
    every limit has room (for ``closed``, until Redis is probed again).
    """

    allowed: bool
    source: Source
    degraded: bool
    requests: tuple[LimitRequest, ...]
    outcomes: tuple[LimitOutcome, ...] = ()
    retry_after_s: float = 0.0
    cached: bool = False
    headers: tuple[tuple[str, str], ...] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    """The response headers of this result once :func:`~edge.ratelimit.responses.rate_limit_headers`
    has made them (a function of the other fields): the Redis limiter hands the same
    result to every request whose bucket gave the same reply, and those requests then
    share its headers. Not a part of the answer (not compared, not copied by ``replace``)."""

    @property
    def status(self) -> int:
        """HTTP status the filter should answer with: 200 (pass on), 429 or 503."""
        if self.allowed:
            return 200
        return 503 if self.source == "closed" else 429

    @property
    def refused_by(self) -> LimitOutcome | None:
        """The refusing limit that will take longest to have room; None if admitted."""
        if self.allowed:
            return None
        refusing = [o for o in self.outcomes if not o.allowed]
        return max(refusing, key=lambda o: o.retry_after_s, default=None)

    @property
    def binding(self) -> LimitOutcome | None:
        """The limit the RateLimit-* headers should describe, None if none was looked at.

        The refusing limit when refused, else the one with the fewest tokens
        left (the IETF draft's "closest to exhaustion").
        """
        if not self.allowed:
            return self.refused_by
        return min(self.outcomes, key=lambda o: o.remaining, default=None)

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for Retry-After (rounded up, so clients never come back early)."""
        return whole_seconds(self.retry_after_s)

    @property
    def reset_seconds(self) -> int | None:
        """Whole seconds for RateLimit-Reset; None when no limit was looked at.

        For a refusal this equals :attr:`retry_after_seconds`, so the two headers agree.
        """
        outcome = self.binding
        if outcome is None:
            return None
        if not self.allowed:
            return self.retry_after_seconds
        return whole_seconds(outcome.reset_after_s)


def whole_seconds(seconds: float) -> int:
    """``seconds`` rounded up to a whole number, ignoring float noise; never negative."""
    whole = math.ceil(seconds - _CEIL_SLACK)
    return whole if whole > 0 else 0  # not max(): this runs for every response


class Limiter(Protocol):
    """Checks a request's limits and takes their tokens, all or none.

    Two ways to ask, with the same semantics: :meth:`check` always gives an
    awaitable; :meth:`check_nowait` gives the result itself when it is known
    without waiting, which spares a caller on the request path a coroutine
    (the rate-limit filter uses it).
    """

    def check(self, limits: Sequence[LimitRequest]) -> Awaitable[LimitResult]:
        """Take each limit's cost from its bucket if every bucket has room, else take nothing.

        An ``async def`` implements it; so does a plain function returning a
        future (the Redis limiter, which saves a coroutine per request).

        Never raises for Redis trouble: a failing backend is answered according
        to each policy's :class:`FailureMode`. Raises ValueError if two limits
        name the same bucket (same policy name and key).
        """
        ...

    def check_nowait(self, limits: Sequence[LimitRequest]) -> LimitResult | Awaitable[LimitResult]:
        """:meth:`check`, answered at once when no waiting is needed.

        Returns the :class:`LimitResult` itself when the limiter decides
        without suspending (in-process buckets, a failure mode, a known-empty
        bucket), else an awaitable of it (a check sent to Redis). Takes the
        tokens exactly as :meth:`check` does, and raises as it does.
        """
        ...


def ensure_distinct(limits: Sequence[LimitRequest]) -> None:
    """Raise ValueError if two limits name the same bucket (they would be charged once)."""
    if len(limits) < 2:
        return
    seen: set[tuple[str, str]] = set()
    for limit in limits:
        bucket = (limit.policy.name, limit.key)
        if bucket in seen:
            raise ValueError(f"bucket {limit.policy.name}:{limit.key} appears twice in one check")
        seen.add(bucket)
