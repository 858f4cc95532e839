"""Global limits held in Redis, with the failure handling that keeps the edge answering.

One request's buckets are checked and charged atomically by a Lua script
(:mod:`edge.ratelimit.script`) run with EVALSHA against Redis's own clock.
Checks made concurrently are coalesced into one pipelined round trip per
event-loop turn (:mod:`edge.ratelimit.coalescer`), and the calls of one batch
go into one EVALSHA (one per Cluster slot), which runs them in order, each
all or none: one command to pack and one reply to parse per batch. Buckets
Redis reported empty are refused locally until they refill
(:mod:`edge.ratelimit.empty_cache`).

Per check, the Python work is the edge's cost of a limit, so the hot path is
kept lean: to a single Redis the batch's EVALSHA is written in the Redis
protocol here, from bulk strings made once per bucket, and sent on a
connection the limiter keeps between batches, without redis-py's pipeline,
general-purpose packer and pool hand-overs (a Cluster still goes through
redis-py's cluster pipeline, which routes by slot); the reply is read as one
list of fields, its clock parsed once per batch
(:class:`~edge.ratelimit.script.ReplyDecoder`); ``check`` hands back the
batch's future rather than being a coroutine; and the batch's decisions reach
the observer in one call.

With many callers, each check's bucket is one of thousands, and what a check
touches of it is likely out of the CPU's caches: so a bucket's state is kept
on its :class:`~edge.ratelimit.limiter.LimitRequest` (which policies hand out
again for the same bucket), reached without a look-up of its own: its Redis
key and ARGV as sent, and its latest result with the level text it came from
(a bucket its callers do not exhaust answers the same, and gets the same
read-only result). A one-limit check (most) goes into the batch as its
``(limit,)`` tuple, which the result then names as its requests.

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
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from edge.ratelimit.bucket import levels
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
    LimitPolicy,
    LimitRequest,
    LimitResult,
    ensure_distinct,
)
from edge.ratelimit.local_limiter import LocalLimiter
from edge.ratelimit.observer import LimiterObserver, NullObserver
from edge.ratelimit.script import (
    SHA,
    SOURCE,
    Call,
    PackedCall,
    ReplyDecoder,
    bucket_spec,
    bulk,
    call_argv,
    evalsha_args,
    join_evalsha,
    pack_evalsha,
    split_reply,
    unbulk,
)
from mesh.loop import running_loop

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


_ONE_CALL: tuple[tuple[int, ...], ...] = ((0,),)
"""The script calls of a check with one limit: one call, that limit."""

_FLAGS = (b"1", b"0")
"""The first field of a script call's reply part: admitted, or not."""

_MAX_ARGV = 65536
"""Most policies whose one-limit ARGV a limiter keeps (see ``RedisLimiter._argv``)."""

_MAX_TEXTS = 4096
"""Most distinct level texts a limiter keeps one copy of (see ``RedisLimiter._texts``)."""


class _Check:
    """One pending check of several limits: their bucket keys and its script calls.

    A plain class rather than a frozen dataclass: one is made per such request,
    and a frozen dataclass costs several times as much to build. Never changed
    once made. (A check of one limit, most checks, is its ``(limit,)`` tuple
    itself: the limit holds what it sends, see :meth:`RedisLimiter._prepare`.)
    """

    __slots__ = ("calls", "keys", "limits", "packed", "script")

    def __init__(
        self,
        limits: tuple[LimitRequest, ...],
        keys: Sequence[bytes],
        calls: Sequence[Sequence[int]],
        script: Sequence[Call],
        packed: Sequence[PackedCall],
    ) -> None:
        self.limits = limits
        self.keys = keys  # each limit's Redis key as a RESP bulk string (LimitRequest.packed)
        self.calls = calls  # indices into limits, one sequence per script call
        self.script = script  # what each script call sends: its keys and ARGV
        self.packed = packed  # the script calls in the Redis protocol


_Pending = tuple[LimitRequest, ...] | _Check
"""What a batch holds per check: the ``(limit,)`` of a one-limit check, else a _Check."""


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
        # Commands to a single Redis are packed here (pack_evalsha), as its client would.
        pool_kwargs: dict[str, Any] = (
            {} if self._cluster else cast(Redis, client).connection_pool.connection_kwargs
        )
        self._encoding: tuple[str, str] = (
            pool_kwargs.get("encoding", "utf-8"),
            pool_kwargs.get("encoding_errors", "strict"),
        )
        self._local = LocalLimiter(instances=instances, clock=clock)
        self._empty = KnownEmptyCache(self._settings.known_empty_capacity)
        self._health = RedisHealth(on_change=self._health_changed)
        self._coalescer: Coalescer[_Pending, LimitResult] = Coalescer(
            self._flush, self._settings.max_batch, self._settings.max_in_flight
        )
        # id(LimitPolicy) -> (that policy, the ARGV of a one-limit check of cost 1 as a
        # RESP bulk string): what every new bucket of the policy sends.
        self._argv: dict[int, tuple[LimitPolicy, bytes]] = {}
        # Level text -> one copy of it: the memo of every bucket left at the same level
        # (most of them, at a level callers do not exhaust) holds that one object, which
        # stays in cache, rather than a copy of its own (see _result_one).
        self._texts: dict[bytes, bytes] = {}
        # Connections to a single Redis kept between batches (see _evalsha).
        self._idle: list[Any] = []
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
        await self._release_idle()
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

    def check(self, limits: Sequence[LimitRequest]) -> Awaitable[LimitResult]:
        """Take every limit's cost, all or none; see :class:`~edge.ratelimit.limiter.Limiter`.

        Completes within about ``timeout_s`` even when Redis hangs (twice that
        at worst, when it waits for the batch in flight before its own is
        sent), and without waiting at all while degraded or when the
        known-empty cache refuses (in which case it does not suspend). A check
        whose batch timed out may or may not have been charged in Redis.
        Raises RuntimeError after aclose(), and ValueError for a repeated
        bucket, when called.

        A plain function returning the batch's future (or a done one), not a
        coroutine: one coroutine less to make, and to pass through twice, per
        request.
        """
        decided = self.check_nowait(limits)
        return _done(decided) if isinstance(decided, LimitResult) else decided

    def check_nowait(self, limits: Sequence[LimitRequest]) -> LimitResult | Awaitable[LimitResult]:
        """:meth:`check`, with the result itself when it is decided without Redis.

        The result when the local fallback, a failure mode or the known-empty
        cache answers; else the future of the batch the check joined. The
        observer hears of a decision when it is made: here, or in the batch
        (:meth:`_flush`) for the checks that went to Redis.
        """
        if self._closed:
            raise RuntimeError("rate limiter is closed")
        count = len(limits)
        if count != 1:
            if not count:
                return LimitResult(True, "redis", not self._health.healthy, ())
            ensure_distinct(limits)
        healthy = self._health.healthy
        known_empty = self._empty.entries
        result: LimitResult | None = None
        if healthy or known_empty:
            # Keys are needed only to ask Redis or the known-empty cache: while
            # degraded with nothing known empty, the fallback answers without them.
            if count == 1:
                # Most checks: the bucket's limit holds its key and the rest (_prepare),
                # and its (limit,) goes into the batch as it is.
                limit = limits[0]
                if limit.owner is not self:
                    self._prepare(limit)
                if known_empty:
                    result = self._cached_refusal(limits, (limit.packed,))
                if result is None and healthy:
                    return self._coalescer.submit(limits if type(limits) is tuple else (limit,))
            else:
                keys = [(x if x.owner is self else self._prepare(x)).packed for x in limits]
                if known_empty:
                    result = self._cached_refusal(limits, keys)
                if result is None and healthy:
                    return self._coalescer.submit(self._check_of(limits, keys))
        if result is None:
            result = self._fallback(limits)
        self._observer.on_decision(result)
        return result

    def _prepare(self, limit: LimitRequest) -> LimitRequest:
        """Give ``limit`` what this limiter sends for its bucket (see :class:`LimitRequest`).

        Done once per LimitRequest, which policies hand out again for the same
        bucket: its Redis key and the ARGV of a check of it alone, as the RESP
        bulk strings that go into a batch's EVALSHA, and no result yet. With
        many callers most requests bring a bucket not seen lately, so the ARGV
        (a function of the policy and the cost) is made once per policy.
        Returns ``limit``.
        """
        policy = limit.policy
        argv = self._argv.get(id(policy)) if limit.cost == 1 else None
        if argv is None:
            rate = policy.rate
            text = "1 " + bucket_spec(rate.per_second, rate.burst, limit.cost)
            argv = (policy, bulk(text, *self._encoding))
            if limit.cost == 1:
                if len(self._argv) >= _MAX_ARGV:
                    self._argv.clear()
                self._argv[id(policy)] = argv
        limit.packed = bulk(bucket_key(limit, self._settings.key_prefix), *self._encoding)
        limit.argv = argv[1]
        limit.memo_text = None
        limit.memo = None
        limit.owner = self
        return limit

    def _check_of(self, limits: Sequence[LimitRequest], keys: Sequence[bytes]) -> _Check:
        """The pending check of several ``limits``, with what its script calls will send.

        ``keys``: each limit's :attr:`~LimitRequest.packed` key.
        """
        calls = self._script_calls(keys)
        script: list[Call] = []
        packed: list[PackedCall] = []
        for call in calls:
            specs = []
            for i in call:
                rate = limits[i].policy.rate
                specs.append(bucket_spec(rate.per_second, rate.burst, limits[i].cost))
            argv = call_argv(specs)
            script.append(([unbulk(keys[i]) for i in call], argv))
            packed.append(
                (len(call), b"".join([keys[i] for i in call]), bulk(argv, *self._encoding))
            )
        return _Check(tuple(limits), keys, calls, script, packed)

    def _one_check(self, limits: tuple[LimitRequest, ...]) -> _Check:
        """The :class:`_Check` of a one-limit check, for the paths that handle any check."""
        limit = limits[0]
        keys = (limit.packed,)
        call: Call = ([unbulk(limit.packed)], unbulk(limit.argv))
        return _Check(limits, keys, _ONE_CALL, (call,), ((1, limit.packed, limit.argv),))

    # -- decisions without Redis ------------------------------------------------------------

    def _cached_refusal(
        self, limits: Sequence[LimitRequest], keys: Sequence[bytes]
    ) -> LimitResult | None:
        if not self._empty.entries:
            return None
        now = self._clock()
        outcomes = []
        for limit, key in zip(limits, keys, strict=True):
            rate = limit.policy.rate
            refusal = self._empty.refusal(
                key, now, float(limit.cost), rate.per_second, float(rate.burst)
            )
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
        if len(limits) == 1 and limits[0].policy.on_failure is FailureMode.LOCAL:
            return self._local.decide_one(limits[0], True)  # most checks while degraded
        modes = (
            (limits[0].policy.on_failure,)
            if len(limits) == 1
            else {limit.policy.on_failure for limit in limits}
        )
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

    def _script_calls(self, keys: Sequence[bytes]) -> Sequence[Sequence[int]]:
        """Which limits go into which script call: all in one, except across Cluster slots.

        ``keys``: each limit's packed key (a RESP bulk string).
        """
        if not self._cluster or len(keys) == 1:
            return [range(len(keys))]
        by_slot: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            by_slot.setdefault(slot_of(unbulk(key)), []).append(index)
        return list(by_slot.values())

    async def _flush(self, checks: list[_Pending]) -> list[LimitResult]:
        """Run one batch of checks in one pipelined round trip (the Coalescer's flush).

        Every result is reported to the observer here, before its check resumes.
        """
        results = await self._decide(checks)
        self._observer.on_decisions(results)
        return results

    async def _decide(self, checks: list[_Pending]) -> list[LimitResult]:
        """The results of one batch (see :meth:`_flush`)."""
        if not self._health.healthy:
            # Redis failed after these were queued: they must not wait on it either.
            return [self._fallback(_limits_of(check)) for check in checks]
        cluster = self._cluster
        script: list[Call] = []
        command = b""
        if cluster:
            for check in checks:
                if type(check) is tuple:
                    script.extend(self._script_of(check))
                else:
                    script.extend(cast(_Check, check).script)
            calls = len(script)
        else:
            command, calls, ones = self._command(checks)
        sent_at = self._clock()
        started = time.perf_counter()
        reply: object = None
        replies: Sequence[object] | None = None
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                if cluster:
                    replies = await self._run_scripts(script)
                else:
                    try:
                        reply = await self._run_command(command)
                    except ResponseError as exc:
                        replies = [exc] * calls  # Redis answered: no outage
        except Exception as exc:
            self._observer.on_round_trip(time.perf_counter() - started, calls, _kind(exc))
            self._failed(exc)
            return [self._fallback(_limits_of(check)) for check in checks]
        self._observer.on_round_trip(time.perf_counter() - started, calls, None)

        decoder = ReplyDecoder()
        if replies is None:
            if ones and type(reply) is bytes:
                return self._results_of_ones(
                    cast(list[tuple[LimitRequest, ...]], checks), reply, sent_at, decoder
                )
            replies = _split(reply, calls)
        if calls == len(checks):
            # One call per check, the only case on a single Redis: replies pair up.
            return [
                self._result_one(check, reply, sent_at, decoder)
                if type(check) is tuple
                else self._result(cast(_Check, check), (reply,), sent_at, decoder)
                for check, reply in zip(checks, replies, strict=True)
            ]
        results = []
        start = 0
        for check in checks:
            if type(check) is tuple:
                results.append(self._result_one(check, replies[start], sent_at, decoder))
                start += 1
            else:
                several = cast(_Check, check)
                end = start + len(several.script)
                results.append(self._result(several, replies[start:end], sent_at, decoder))
                start = end
        return results

    def _command(self, checks: list[_Pending]) -> tuple[bytes, int, bool]:
        """The EVALSHA of a batch to a single Redis, in the Redis protocol, its call count,
        and whether every check is of one limit.

        Made of the bulk strings each check holds (a one-limit check's limit its
        key and ARGV, see :meth:`_prepare`; a _Check its calls), joined once.
        """
        keys: list[bytes] = []
        argvs: list[bytes] = []
        extra_keys = 0  # keys beyond one per call
        ones = True
        for check in checks:
            if type(check) is tuple:
                limit = check[0]
                keys.append(limit.packed)
                argvs.append(limit.argv)
            else:
                ones = False
                for count, packed_keys, argv in cast(_Check, check).packed:
                    keys.append(packed_keys)
                    argvs.append(argv)
                    extra_keys += count - 1
        calls = len(argvs)
        return join_evalsha(calls + extra_keys, keys, argvs), calls, ones

    def _script_of(self, limits: tuple[LimitRequest, ...]) -> Sequence[Call]:
        """The script call of a one-limit check, for a Cluster's pipeline."""
        limit = limits[0]
        return (([unbulk(limit.packed)], unbulk(limit.argv)),)

    async def _run_command(self, command: bytes) -> object:
        """Send a batch's EVALSHA (:meth:`_command`) to the single Redis; its reply.

        After NOSCRIPT (Redis restarted, or SCRIPT FLUSH ran), the script is
        loaded and the command sent again: on a single Redis the whole EVALSHA
        was refused, so none of its calls ran. Raises ResponseError for an error
        reply (none of the calls ran), and what a failure of Redis raises.
        """
        try:
            return await self._evalsha(command)
        except NoScriptError:
            await self._load_script()
            return await self._evalsha(command)

    def _results_of_ones(
        self,
        checks: list[tuple[LimitRequest, ...]],
        reply: bytes,
        sent_at: float,
        decoder: ReplyDecoder,
    ) -> list[LimitResult]:
        """The results of a batch of one-limit checks from its EVALSHA's reply, in order.

        The reply is one line ``<0|1> <now> <tokens> <stamp>`` per check, read as
        one list of fields rather than split into lines first: no line objects,
        no list per line. From the first part that is not such a line (an error,
        ``E ...``), the rest is split into lines and each read by itself.
        """
        fields = reply.split()
        results: list[LimitResult] = []
        if len(fields) == 4 * len(checks):
            result_of = self._result_of_fields
            at = 0
            for check in checks:
                flag = fields[at]
                # Every line before this one had 4 fields, so this one starts here.
                if flag not in _FLAGS:
                    break
                now = fields[at + 1]
                level = fields[at + 2]
                stamp = fields[at + 3]
                at += 4
                results.append(result_of(check, flag, now, level, stamp, sent_at, decoder))
        done = len(results)
        if done < len(checks):
            lines = _split(reply, len(checks))
            for check, line in zip(checks[done:], lines[done:], strict=True):
                results.append(self._result_one(check, line, sent_at, decoder))
        return results

    async def _run_scripts(self, calls: list[Call]) -> list[object]:
        """EVALSHA every call in one round trip; after NOSCRIPT, SCRIPT LOAD and rerun those.

        What a Cluster's batches and the refunds (on either kind of Redis) go through.
        """
        replies = await self._send(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted or SCRIPT FLUSH ran: load the script once and rerun the calls.
            await self._load_script()
            rerun = await self._send([calls[i] for i in missing])
            for i, reply in zip(missing, rerun, strict=True):
                replies[i] = reply
        return replies

    async def _send(self, calls: list[Call]) -> list[object]:
        """Run ``calls`` in one round trip; one reply (or exception) per call, in order.

        The calls of one slot (all of them on a single Redis) go into one
        EVALSHA. An error reply (NOSCRIPT, a failing script) is returned for
        each call of its EVALSHA; a failure of Redis itself is raised.
        """
        if not calls:
            return []
        if self._cluster:
            return await self._pipeline(calls)
        try:
            reply = await self._evalsha(pack_evalsha(calls, *self._encoding))
        except ResponseError as exc:
            return [exc] * len(calls)
        try:
            return list(split_reply(reply, len(calls)))
        except ValueError as exc:
            return [exc] * len(calls)

    async def _evalsha(self, command: bytes) -> object:
        """Send one packed EVALSHA to the single Redis and read its reply.

        The connection is one this limiter keeps between batches (``_idle``):
        taking one from redis-py's pool and giving it back costs more than the
        rest of the round trip (a lock, connection-state bookkeeping and
        events, each a few coroutines), and it is written to without redis-py's
        per-write timer (:func:`_write`). Before use it gets the check the pool
        would make (``can_read``: a connection with unread data, or one the
        server closed, is not used). The reply is read without redis-py's own
        read timer: every batch runs under the limiter's shorter timeout.

        No retries (see :mod:`edge.ratelimit.client`). An error reply
        (ResponseError: NoScriptError, ...) leaves the connection usable. On
        a timeout, a cancellation or a connection error, redis-py closes the
        connection and it goes back to the pool, so no later command reads
        this one's reply, and a later batch gets a fresh one.
        """
        idle = self._idle
        conn = idle.pop() if idle else None
        usable = False
        try:
            if conn is not None and await _dirty(conn):
                dirty, conn = conn, None
                await self._pool().release(dirty)
            if conn is None:
                conn = await self._pool().get_connection()
            await _write(conn, command)
            try:
                reply = await conn.read_response(timeout=math.inf)
            except ResponseError:
                usable = True  # a whole error reply was read
                raise
            usable = True
            return reply
        finally:
            if conn is not None:
                if usable and not self._closed:
                    idle.append(conn)
                else:
                    await self._pool().release(conn)

    def _pool(self) -> Any:
        return cast(Redis, self._client).connection_pool

    async def _release_idle(self) -> None:
        """Give the kept connections back to the pool (before closing idle ones, or the client)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool().release(conn)

    async def _pipeline(self, calls: list[Call]) -> list[object]:
        """:meth:`_send` on a Redis Cluster: one EVALSHA per slot, in one pipeline."""
        groups = self._by_slot(calls)
        client: Any = self._client
        pipe = client.pipeline()
        for group in groups:
            pipe.execute_command("EVALSHA", SHA, *evalsha_args([calls[i] for i in group]))
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

    def _by_slot(self, calls: list[Call]) -> list[list[int]]:
        """Indices of ``calls`` grouped into EVALSHAs by the slot of their (common) keys."""
        by_slot: dict[int, list[int]] = {}
        for index, (keys, _) in enumerate(calls):
            by_slot.setdefault(slot_of(keys[0]), []).append(index)
        return list(by_slot.values())

    async def _load_script(self) -> None:
        # On Cluster, redis-py sends SCRIPT LOAD to every primary.
        client: Any = self._client
        await cast(Awaitable[object], client.script_load(SOURCE))

    def _result_one(
        self,
        limits: tuple[LimitRequest, ...],
        reply: object,
        sent_at: float,
        decoder: ReplyDecoder,
    ) -> LimitResult:
        """:meth:`_result` of a check with one limit (one call): what most requests are.

        The same numbers, without the loops and lists a request with several
        limits (or several Cluster slots) needs. A well-formed reply part
        (``<0|1> <now> <tokens> <stamp>``, see :class:`ReplyDecoder`) is read
        here; anything else goes to :meth:`_result`, which decodes it in full
        and handles errors.
        """
        fields = reply.split() if type(reply) is bytes else ()
        if len(fields) != 4 or (flag := fields[0]) not in _FLAGS:
            return self._result(self._one_check(limits), (reply,), sent_at, decoder)
        return self._result_of_fields(
            limits, flag, fields[1], fields[2], fields[3], sent_at, decoder
        )

    def _result_of_fields(
        self,
        limits: tuple[LimitRequest, ...],
        flag: bytes,
        now: bytes,
        level: bytes,
        stamp: bytes,
        sent_at: float,
        decoder: ReplyDecoder,
    ) -> LimitResult:
        """The result of a one-limit check from its reply part's four fields: the limit's
        memo when the fields say what it was made of, else :meth:`_result_of`."""
        limit = limits[0]
        memo = limit.memo
        # With the stamp at Redis's now, the result is a function of the flag and the
        # level alone (and the check): the same text as last time gives the same result,
        # which is read-only and can be shared (see _result_of, which keeps it). A bucket
        # its callers do not exhaust answers the same level on every visit (full again,
        # less the cost).
        if (
            memo is not None
            and stamp == now
            and limit.memo_text == level
            and memo.allowed is (flag == b"1")
        ):
            if self._empty.entries:
                self._empty.forget(limit.packed)  # as _result_of does, for a level of 1 or more
            return memo
        return self._result_of(limits, flag, now, level, stamp, sent_at, decoder)

    def _result_of(
        self,
        limits: tuple[LimitRequest, ...],
        flag: bytes,
        now: bytes,
        level: bytes,
        stamp: bytes,
        sent_at: float,
        decoder: ReplyDecoder,
    ) -> LimitResult:
        """:meth:`_result_one` of a well-formed reply part, given as its four fields,
        when the bucket's memo does not answer it (the callers test that first)."""
        limit = limits[0]
        # The bucket's stamp is Redis's now unless its clock went back (rare): then the
        # refill waits for the stamp, and only then is either parsed.
        current = stamp == now
        admitted = flag == b"1"
        tokens = float(level)
        wait_s = 0.0 if current else float(stamp) - decoder.now(now)
        rate = limit.policy.rate
        cost = float(limit.cost)
        # Refused calls leave levels untouched, so "had room" is readable off them.
        had_room = admitted or tokens >= cost
        remaining, reset_s, retry_s = levels(
            had_room, tokens, cost, rate.per_second, float(rate.burst), wait_s
        )
        if tokens < 1.0:
            # Refill restarts at Redis's stamp, which may be ahead of its now.
            wait = wait_s if wait_s > 0.0 else 0.0
            self._empty.remember(limit.packed, tokens, sent_at + wait, rate.per_second)
        elif self._empty.entries:
            self._empty.forget(limit.packed)  # what remember() does for a level of 1 or more
        # One call: nothing was taken unless admitted, so there is nothing to refund.
        result = LimitResult(
            admitted,
            "redis",
            False,
            limits,
            (LimitOutcome(limit, had_room, remaining, reset_s, retry_s),),
            0.0 if admitted else retry_s,
        )
        if current and tokens >= 1.0 and limit.owner is self:
            texts = self._texts
            text = texts.get(level)
            if text is None:
                if len(texts) >= _MAX_TEXTS:
                    texts.clear()
                text = texts[level] = level
            limit.memo_text = text
            limit.memo = result
        return result

    def _result(
        self, check: _Check, replies: Sequence[object], sent_at: float, decoder: ReplyDecoder
    ) -> LimitResult:
        """Turn one check's script replies into its LimitResult, refunding split admissions.

        ``decoder`` decodes every reply of the batch (it reads Redis's clock once).
        """
        limits = check.limits
        keys = check.keys
        remember = self._empty.remember
        made: list[LimitOutcome] = []  # in the order of the calls' limits
        admitted_calls: list[Sequence[int]] = []
        admitted = True
        failed: Exception | None = None
        for call, reply in zip(check.calls, replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                call_admitted, numbers = decoder.decode(reply, len(call))
            except Exception as exc:
                failed = exc
                if _is_outage(exc):
                    # E.g. one Cluster node unreachable while the others answered.
                    self._failed(exc)
                continue
            if call_admitted:
                admitted_calls.append(call)
            else:
                admitted = False
            now = numbers[0]
            at = 1  # numbers[at], numbers[at + 1]: this limit's level and its time
            for i in call:
                limit = limits[i]
                rate = limit.policy.rate
                cost = float(limit.cost)
                tokens = numbers[at]
                wait_s = numbers[at + 1] - now
                at += 2
                # Refused calls leave levels untouched, so "had room" is readable off them.
                had_room = call_admitted or tokens >= cost
                remaining, reset_s, retry_s = levels(
                    had_room, tokens, cost, rate.per_second, float(rate.burst), wait_s
                )
                made.append(LimitOutcome(limit, had_room, remaining, reset_s, retry_s))
                # Refill restarts at Redis's stamp, which may be ahead of its now.
                remember(keys[i], tokens, sent_at + max(0.0, wait_s), rate.per_second)

        if failed is not None or not admitted:
            # Tokens taken by some calls of a request that is not admitted go back.
            self._refund(check, admitted_calls)
        if failed is not None:
            if not _is_outage(failed):
                # Redis answered but this script call failed (a wrong-typed key, a bug):
                # a per-request problem, not an outage, so Redis stays in use.
                log.warning("rate limit script failed: %s", failed)
                self._observer.on_round_trip(0.0, len(check.calls), "script")
            return self._fallback(limits)

        if len(check.calls) > 1:
            # Calls grouped the limits by Cluster slot: put the outcomes back in limit order.
            order = [i for call in check.calls for i in call]
            made = [o for _, o in sorted(zip(order, made, strict=True), key=lambda p: p[0])]
        retry = 0.0 if admitted else max(o.retry_after_s for o in made)
        return LimitResult(admitted, "redis", False, tuple(limits), tuple(made), retry)

    def _refund(self, check: _Check, calls: list[Sequence[int]]) -> None:
        if not calls:
            return
        refunds: list[Call] = []
        for call in calls:
            keys: list[str | bytes] = []
            specs = []
            for i in call:
                limit = check.limits[i]
                rate = limit.policy.rate
                keys.append(unbulk(check.keys[i]))
                specs.append(bucket_spec(rate.per_second, rate.burst, -limit.cost))
                # The cached level predates the refund and would under-state the bucket.
                self._empty.forget(check.keys[i])
            refunds.append((keys, call_argv(specs)))
        task = asyncio.get_running_loop().create_task(self._send_refunds(refunds))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_refunds(self, calls: list[Call]) -> None:
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
                    await self._release_idle()
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


async def _write(conn: Any, command: bytes) -> None:
    """``conn.send_packed_command(command)`` without its write timer.

    redis-py bounds a write with ``socket_timeout`` through ``asyncio.wait_for``,
    which makes a task and a timer per batch; every batch already runs under
    the limiter's own, shorter timeout. So the command goes to the connection's
    stream as redis-py's untimed branch writes it, with the same cleanup: on
    any failure or cancellation the connection is closed. A connection that is
    not connected (or a redis-py without that stream) takes the public method.
    """
    writer = getattr(conn, "_writer", None)
    if writer is None or not conn.is_connected:
        await conn.send_packed_command(command, check_health=False)
        return
    try:
        writer.write(command)
        await writer.drain()
    except BaseException:
        await conn.disconnect(nowait=True)
        raise


async def _dirty(conn: Any) -> bool:
    """True if a kept connection must not be used (then it is closed): the pool's own check.

    A connection with unread data, or one the server closed (end of file), is dirty;
    ``can_read`` raises ConnectionError, having closed it, if it was closed already.
    """
    try:
        if not await conn.can_read():
            return False
    except (RedisConnectionError, OSError):
        return True
    await conn.disconnect()
    return True


def _split(reply: object, calls: int) -> Sequence[object]:
    """:func:`~edge.ratelimit.script.split_reply`, a malformed reply an error for each call."""
    try:
        return split_reply(reply, calls)
    except ValueError as exc:
        return [exc] * calls


def _limits_of(check: _Pending) -> tuple[LimitRequest, ...]:
    """The limits of a batch's check."""
    return check if type(check) is tuple else cast(_Check, check).limits


def _done(result: LimitResult) -> asyncio.Future[LimitResult]:
    """A future already holding ``result``: awaiting it does not suspend."""
    future = running_loop().create_future()
    future.set_result(result)
    return future


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
