"""Global limits held in Redis, with the failure handling that keeps the edge answering.

One request's buckets are checked and charged atomically by a Lua script
(:mod:`edge.ratelimit.script`) run with EVALSHA against Redis's own clock.
Checks made concurrently are coalesced into one pipelined round trip per
event-loop turn (:mod:`edge.ratelimit.coalescer`), and the calls of one batch
go into one EVALSHA (one per Cluster slot), which runs them in order, each
all or none: one command to pack and one reply to parse per batch. Buckets
Redis reported empty are refused locally until they refill
(:mod:`edge.ratelimit.empty_cache`).

When a round trip fails or outlasts ``timeout_s``, Redis is marked unusable
(:mod:`edge.ratelimit.health`): from then on no request waits on it. Each
check is answered by its policies' failure modes - ``closed`` refuses (503),
``local`` uses the in-process buckets at 1/N of the limit, ``open`` admits -
while a background probe tries Redis every ``probe_interval_s`` and restores
global limits as soon as it answers.

On Redis Cluster a request's buckets are grouped by slot and each group is one
script call. Groups of one request run in the same round trip; if some group
admitted and another refused, the admitted groups are refunded by a
follow-up call (the script with negative costs), so a refused request keeps no
tokens, though another request may briefly see them missing. Give the limits
of one request a common partition (the caller's identity) to stay in one slot
and fully atomic. On a single Redis every request is one script call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from redis.asyncio import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from edge.ratelimit.client import (
    RedisClient,
    RedisSettings,
    create_redis_client,
    drop_idle_connections,
)
from edge.ratelimit.coalescer import Coalescer
from edge.ratelimit.empty_cache import KnownEmptyCache
from edge.ratelimit.health import HealthStatus, RedisHealth
from edge.ratelimit.keys import DEFAULT_PREFIX, bucket_key, check_prefix, slot_of
from edge.ratelimit.limiter import (
    FailureMode,
    LimitOutcome,
    LimitRequest,
    LimitResult,
    ensure_distinct,
)
from edge.ratelimit.local_limiter import LocalLimiter
from edge.ratelimit.observer import LimiterObserver, NullObserver
from edge.ratelimit.script import (
    SHA,
    SOURCE,
    BucketCharge,
    decode_reply,
    script_args,
    split_reply,
)

log = logging.getLogger(__name__)


def _one_instance() -> int:
    return 1


@dataclass(frozen=True, slots=True)
class RedisLimiterSettings:
    """Tuning of :class:`RedisLimiter`.

    ``timeout_s``: longest a batch may take before Redis counts as failed
    (including a NOSCRIPT reload); it is measured on the event loop, so it
    includes the loop's own lag and should exceed the edge's worst loop stall.
    ``probe_interval_s``: pause between background probes while degraded;
    also the Retry-After of ``closed`` refusals. ``probe_timeout_s``: a
    probe's deadline; longer than ``timeout_s`` because no request waits on
    it and a cluster client may have to rediscover the topology first.
    ``key_prefix``: first part of every bucket key. ``max_batch``: most checks
    per batch. ``max_in_flight``: batches in flight at once (None: no
    limit); checks made meanwhile go out together when one returns, so that
    batches grow with load instead of costing a round trip per loop turn.
    ``known_empty_capacity``: most buckets remembered empty.
    """

    timeout_s: float = 0.05
    probe_interval_s: float = 0.5
    probe_timeout_s: float = 0.5
    key_prefix: str = DEFAULT_PREFIX
    max_batch: int = 256
    max_in_flight: int | None = 1
    known_empty_capacity: int = 100_000

    def __post_init__(self) -> None:
        for name in ("timeout_s", "probe_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.probe_timeout_s > 0:
            raise ValueError(f"probe_timeout_s must be positive, got {self.probe_timeout_s!r}")
        if self.max_batch < 1 or self.known_empty_capacity < 1:
            raise ValueError("max_batch and known_empty_capacity must be at least 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight!r}")
        check_prefix(self.key_prefix)


@dataclass(frozen=True, slots=True)
class _Check:
    """One pending check: its limits, one charge per limit, and its script calls."""

    limits: Sequence[LimitRequest]
    charges: list[BucketCharge]
    calls: list[list[int]]  # indices into charges, one list per script call


class RedisLimiter:
    """A :class:`~edge.ratelimit.limiter.Limiter` enforcing global limits through Redis.

    ``client`` is a ``redis.asyncio.Redis`` or ``RedisCluster`` (see
    :func:`~edge.ratelimit.client.create_redis_client`, or build with
    :meth:`connect`). ``instances`` returns the number of healthy edges, for the
    local fallback's 1/N share. ``clock`` is a monotonic clock in seconds (the
    local one; bucket arithmetic in Redis uses Redis's). One event loop owns an
    instance; use it as an async context manager, or call :meth:`start` and
    :meth:`aclose`.
    """

    def __init__(
        self,
        client: RedisClient,
        settings: RedisLimiterSettings | None = None,
        *,
        instances: Callable[[], int] = _one_instance,
        observer: LimiterObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._settings = settings or RedisLimiterSettings()
        self._observer: LimiterObserver = observer or NullObserver()
        self._clock = clock
        self._owns_client = owns_client
        self._cluster = isinstance(client, RedisCluster)
        self._local = LocalLimiter(instances=instances, clock=clock)
        self._empty = KnownEmptyCache(self._settings.known_empty_capacity)
        self._health = RedisHealth(on_change=self._health_changed)
        self._coalescer: Coalescer[_Check, LimitResult] = Coalescer(
            self._flush, self._settings.max_batch, self._settings.max_in_flight
        )
        self._probe_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def connect(
        cls,
        redis: RedisSettings,
        settings: RedisLimiterSettings | None = None,
        *,
        instances: Callable[[], int] = _one_instance,
        observer: LimiterObserver | None = None,
    ) -> RedisLimiter:
        """A limiter with its own client for ``redis`` (single or cluster), closed by aclose()."""
        client = create_redis_client(redis)
        return cls(client, settings, instances=instances, observer=observer, owns_client=True)

    async def __aenter__(self) -> RedisLimiter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self, timeout_s: float = 5.0) -> None:
        """Connect (on Cluster: discover the topology) and load the script, within ``timeout_s``.

        Optional, but it keeps the first requests off the slow paths: a cluster
        client's first use costs tens of milliseconds, close to the per-batch
        timeout. If Redis does not answer in time the limiter starts degraded
        and probes in the background. Never raises for Redis trouble.
        """
        try:
            async with asyncio.timeout(timeout_s):
                if isinstance(self._client, RedisCluster):
                    await self._client.initialize()
                await self._load_script()
        except Exception as exc:
            self._failed(exc)

    async def aclose(self) -> None:
        """Stop probing, let in-flight batches finish, close the client if this limiter owns it."""
        self._closed = True
        # Batches first: they may still spawn refunds, which are cancelled next.
        await self._coalescer.drain()
        tasks = [t for t in (self._probe_task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    @property
    def healthy(self) -> bool:
        """False while degraded (Redis failed and has not answered a probe since)."""
        return self._health.healthy

    def status(self) -> HealthStatus:
        """Health snapshot for admin endpoints: degraded since when, last error, outages."""
        return self._health.status()

    @property
    def local(self) -> LocalLimiter:
        """The in-process fallback (exposed for admin endpoints and tests)."""
        return self._local

    async def check(self, limits: Sequence[LimitRequest]) -> LimitResult:
        """Take every limit's cost, all or none; see :class:`~edge.ratelimit.limiter.Limiter`.

        Completes within about ``timeout_s`` even when Redis hangs (twice that
        at worst, when it waits for the batch in flight before its own is
        sent), and without waiting at all while degraded or when the
        known-empty cache refuses (in which case it does not suspend). A check
        whose batch timed out may or may not have been charged in Redis.
        Raises RuntimeError after aclose().
        """
        if self._closed:
            raise RuntimeError("rate limiter is closed")
        ensure_distinct(limits)
        if not limits:
            return LimitResult(allowed=True, source="redis", degraded=not self.healthy, requests=())
        healthy = self._health.healthy
        result: LimitResult | None = None
        if healthy or len(self._empty):
            # Keys and charges are needed only to ask Redis or the known-empty cache:
            # while degraded with nothing known empty, the fallback answers without them.
            charges = self._charges(limits)
            result = self._cached_refusal(limits, charges)
            if result is None and healthy:
                result = await self._coalescer.submit(
                    _Check(limits, charges, self._script_calls(charges))
                )
        if result is None:
            result = self._fallback(limits)
        self._observer.on_decision(result)
        return result

    def _charges(self, limits: Sequence[LimitRequest]) -> list[BucketCharge]:
        prefix = self._settings.key_prefix
        return [
            BucketCharge(
                bucket_key(limit, prefix),
                limit.policy.rate.per_second,
                float(limit.policy.rate.burst),
                float(limit.cost),
            )
            for limit in limits
        ]

    # -- decisions without Redis ------------------------------------------------------------

    def _cached_refusal(
        self, limits: Sequence[LimitRequest], charges: list[BucketCharge]
    ) -> LimitResult | None:
        if not len(self._empty):
            return None
        now = self._clock()
        outcomes = []
        for limit, charge in zip(limits, charges, strict=True):
            refusal = self._empty.refusal(charge.key, now, charge.cost, charge.rate, charge.burst)
            if refusal is not None:
                outcomes.append(
                    LimitOutcome(
                        limit,
                        False,
                        refusal.remaining,
                        refusal.reset_after_s,
                        refusal.retry_after_s,
                    )
                )
        if not outcomes:
            return None
        return LimitResult(
            allowed=False,
            source="redis",
            degraded=not self._health.healthy,
            requests=tuple(limits),
            outcomes=tuple(outcomes),
            retry_after_s=max(o.retry_after_s for o in outcomes),
            cached=True,
        )

    def _fallback(self, limits: Sequence[LimitRequest]) -> LimitResult:
        """Answer without Redis: closed beats local beats open when a request mixes them."""
        modes = {limit.policy.on_failure for limit in limits}
        if FailureMode.CLOSED in modes:
            return LimitResult(
                allowed=False,
                source="closed",
                degraded=True,
                requests=tuple(limits),
                retry_after_s=self._settings.probe_interval_s,
            )
        if FailureMode.LOCAL in modes:
            local = [limit for limit in limits if limit.policy.on_failure is FailureMode.LOCAL]
            result = self._local.decide(local, degraded=True)
            if len(local) != len(limits):
                result = replace(result, requests=tuple(limits))
            return result
        return LimitResult(allowed=True, source="open", degraded=True, requests=tuple(limits))

    # -- the Redis round trip -----------------------------------------------------------------

    def _script_calls(self, charges: list[BucketCharge]) -> list[list[int]]:
        """Which charges go into which script call: all in one, except across Cluster slots."""
        if not self._cluster or len(charges) == 1:
            return [list(range(len(charges)))]
        by_slot: dict[int, list[int]] = {}
        for index, charge in enumerate(charges):
            by_slot.setdefault(slot_of(charge.key), []).append(index)
        return list(by_slot.values())

    async def _flush(self, checks: list[_Check]) -> list[LimitResult]:
        """Run one batch of checks in one pipelined round trip (the Coalescer's flush)."""
        if not self._health.healthy:
            # Redis failed after these were queued: they must not wait on it either.
            return [self._fallback(check.limits) for check in checks]
        calls = [
            (n, [check.charges[i] for i in call])
            for n, check in enumerate(checks)
            for call in check.calls
        ]
        sent_at = self._clock()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                replies = await self._run_scripts([charges for _, charges in calls])
        except Exception as exc:
            self._observer.on_round_trip(time.perf_counter() - started, len(calls), _kind(exc))
            self._failed(exc)
            return [self._fallback(check.limits) for check in checks]
        self._observer.on_round_trip(time.perf_counter() - started, len(calls), None)

        per_check: list[list[object]] = [[] for _ in checks]
        for (n, _), reply in zip(calls, replies, strict=True):
            per_check[n].append(reply)
        return [
            self._result(check, replies_of_check, sent_at)
            for check, replies_of_check in zip(checks, per_check, strict=True)
        ]

    async def _run_scripts(self, calls: list[list[BucketCharge]]) -> list[object]:
        """EVALSHA every call in one pipeline; after NOSCRIPT, SCRIPT LOAD and rerun those."""
        replies = await self._pipeline(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted or SCRIPT FLUSH ran: load the script once and rerun the calls.
            await self._load_script()
            rerun = await self._pipeline([calls[i] for i in missing])
            for i, reply in zip(missing, rerun, strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, calls: list[list[BucketCharge]]) -> list[object]:
        """Run ``calls`` in one round trip; one reply (or exception) per call, in order.

        The calls of one slot (all of them on a single Redis) go into one
        EVALSHA: one command to pack and one reply to parse per batch, not per
        request, which is most of the client's cost per check.
        """
        if not calls:
            return []
        groups = self._by_slot(calls)
        # Non-transactional: scripts are atomic already, MULTI would only add bytes.
        client: Any = self._client
        pipe = client.pipeline() if self._cluster else client.pipeline(transaction=False)
        for group in groups:
            pipe.execute_command("EVALSHA", SHA, *script_args([calls[i] for i in group]))
        replies: list[object] = [None] * len(calls)
        for group, reply in zip(groups, await pipe.execute(raise_on_error=False), strict=True):
            parts: list[object]
            try:
                if isinstance(reply, Exception):
                    raise reply
                parts = list(split_reply(reply, len(group)))
            except Exception as exc:
                parts = [exc] * len(group)
            for i, part in zip(group, parts, strict=True):
                replies[i] = part
        return replies

    def _by_slot(self, calls: list[list[BucketCharge]]) -> list[list[int]]:
        """Indices of ``calls`` grouped into EVALSHAs: all in one, except across Cluster slots."""
        if not self._cluster:
            return [list(range(len(calls)))]
        by_slot: dict[int, list[int]] = {}
        for index, call in enumerate(calls):
            by_slot.setdefault(slot_of(call[0].key), []).append(index)
        return list(by_slot.values())

    async def _load_script(self) -> None:
        # On Cluster, redis-py sends SCRIPT LOAD to every primary.
        client: Any = self._client
        await cast(Awaitable[object], client.script_load(SOURCE))

    def _result(self, check: _Check, replies: list[object], sent_at: float) -> LimitResult:
        """Turn one check's script replies into its LimitResult, refunding split admissions."""
        decisions: list[LimitOutcome | None] = [None] * len(check.limits)
        admitted_calls: list[list[int]] = []
        admitted = True
        failed: Exception | None = None
        for call, reply in zip(check.calls, replies, strict=True):
            charges = [check.charges[i] for i in call]
            try:
                if isinstance(reply, Exception):
                    raise reply
                decoded = decode_reply(reply, len(call))
            except Exception as exc:
                failed = exc
                if _is_outage(exc):
                    # E.g. one Cluster node unreachable while the others answered.
                    self._failed(exc)
                continue
            if decoded.admitted:
                admitted_calls.append(call)
            else:
                admitted = False
            for i, charge, d, (tokens, updated) in zip(
                call, charges, decoded.decisions(charges), decoded.levels, strict=True
            ):
                limit = check.limits[i]
                decisions[i] = LimitOutcome(
                    limit, d.allowed, d.remaining, d.reset_after_s, d.retry_after_s
                )
                # Refill restarts at Redis's stamp, which may be ahead of its now.
                at = sent_at + max(0.0, updated - decoded.now)
                self._empty.remember(charge.key, tokens, at, charge.rate)

        if failed is not None or not admitted:
            # Tokens taken by some calls of a request that is not admitted go back.
            self._refund(check, admitted_calls)
        if failed is not None:
            if not _is_outage(failed):
                # Redis answered but this script call failed (a wrong-typed key, a bug):
                # a per-request problem, not an outage, so Redis stays in use.
                log.warning("rate limit script failed: %s", failed)
                self._observer.on_round_trip(0.0, len(check.calls), "script")
            return self._fallback(check.limits)

        outcomes = tuple(o for o in decisions if o is not None)
        retry = 0.0 if admitted else max(o.retry_after_s for o in outcomes)
        return LimitResult(
            allowed=admitted,
            source="redis",
            degraded=False,
            requests=tuple(check.limits),
            outcomes=outcomes,
            retry_after_s=retry,
        )

    def _refund(self, check: _Check, calls: list[list[int]]) -> None:
        if not calls:
            return
        refunds = []
        for call in calls:
            refund = []
            for i in call:
                charge = check.charges[i]
                refund.append(replace(charge, cost=-charge.cost))
                # The cached level predates the refund and would under-state the bucket.
                self._empty.forget(charge.key)
            refunds.append(refund)
        task = asyncio.get_running_loop().create_task(self._send_refunds(refunds))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_refunds(self, calls: list[list[BucketCharge]]) -> None:
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                await self._run_scripts(calls)
        except Exception as exc:
            # Best effort: the tokens come back by refill anyway.
            log.warning("rate limit refund failed: %s", exc)

    # -- degraded mode ------------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        started_outage = self._health.failed(self._clock(), f"{_kind(exc)}: {exc!r}")
        probing = self._probe_task is not None and not self._probe_task.done()
        if started_outage and not probing and not self._closed:
            self._probe_task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        """While degraded, try Redis every probe interval; the first answer restores it."""
        while not self._health.healthy and not self._closed:
            await asyncio.sleep(self._settings.probe_interval_s)
            try:
                async with asyncio.timeout(self._settings.probe_timeout_s):
                    # Pooled connections may lead to a Redis that died: probe, and
                    # then serve, on fresh ones, or each would fail once more.
                    await drop_idle_connections(self._client)
                    # Loading the script both proves Redis answers and readies it after a restart.
                    await self._load_script()
            except Exception as exc:
                self._health.failed(self._clock(), f"probe {_kind(exc)}: {exc!r}")
                continue
            # Buckets may have been lost with Redis: stale "empty" entries would over-refuse.
            self._empty.clear()
            self._health.recovered()

    def _health_changed(self, healthy: bool, reason: str | None) -> None:
        if healthy:
            log.warning("redis rate limiting restored; global limits apply again")
        else:
            log.warning("redis rate limiting degraded (%s); using failure modes", reason)
        self._observer.on_health_change(healthy, reason)


def _is_outage(exc: BaseException) -> bool:
    """True for failures of Redis itself, False for errors about one command's data."""
    if isinstance(exc, ClusterDownError | TryAgainError | ReadOnlyError):
        return True  # CLUSTERDOWN, TRYAGAIN, READONLY (a failover in progress)
    return not isinstance(exc, ResponseError | ValueError)


def _kind(exc: BaseException) -> str:
    """A short, low-cardinality name for a failure, for metrics."""
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    if isinstance(exc, ResponseError):
        return "response"
    return type(exc).__name__
