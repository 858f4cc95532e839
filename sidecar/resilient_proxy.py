"""The sidecar's outbound terminal handler: breakers, retries under a budget, deadlines.

Per request:

0. with a canary for the service (its ``canary`` policy), the call's side is drawn
   and it goes to that side's healthy instances (the other's when it has none);
1. the service breaker may answer at once (503, ``Retry-After`` = time left open);
2. the body is buffered when small enough to be sent again (``replay_limit``),
   otherwise streamed and never replayed;
3. the attempts (the first made directly, tenacity taking over from its outcome
   when that may be retried): each picks an eligible instance (open instance
   breakers ejected, up to the configured share; instances that sent
   backpressure avoided), preferring one not tried yet (a call with a hash key,
   the service's ``hash_policy``: the one Maglev maps the key to, then the
   next in its table), bounded by the per-try timeout and by the request's
   deadline;
4. :func:`~mesh.resilience.retry_policy.retry_if_outcome` decides retries:
   connect failures for any method, timeouts/resets/502/503/504 only for
   idempotent requests with a replayable body, each retry spending the budget;
5. backpressure (429/503 with ``Retry-After``) is passed back to the caller,
   that instance is avoided for the stated time, no breaker counts it;
6. with the service's ``hedge_on_per_try_timeout``, an idempotent call with a
   replayable body is hedged instead (:meth:`ResilientProxy._hedged`, the rules in
   :mod:`sidecar.hedging`): an attempt without an answer at its per-try timeout runs
   on while another starts, and the first usable answer wins.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import BadHttpMessage
from tenacity import AsyncRetrying, RetryCallState, stop_never

from mesh.balancing import Balancer, Selector
from mesh.deadline import HEADER as DEADLINE_HEADER
from mesh.deadline import format_remaining
from mesh.exchange import Exchange
from mesh.locality import LocalityRouter
from mesh.mtls.contexts import MeshTls
from mesh.proxy import (
    ATTEMPTS_HEADER,
    ProxySettings,
    bad_gateway,
    bounded,
    client_body_problem,
    gateway_timeout,
    no_healthy_instance,
    record_outcome,
    stream_response,
)
from mesh.resilience.backoff import full_jitter_backoff, wait_full_jitter
from mesh.resilience.breaker import CircuitBreaker, Permit
from mesh.resilience.concurrency import ServiceConcurrency
from mesh.resilience.ejection import MAX_AVOIDANCE_S, select_eligible
from mesh.resilience.outcome import CallError, CallOutcome, parse_retry_after
from mesh.resilience.retry_policy import is_idempotent, retry_if_outcome, should_retry
from mesh.snapshot import Instance, Snapshot
from mesh.telemetry.tracing import (
    EVENT_BREAKER_REJECTED,
    EVENT_HEDGE,
    EVENT_RETRY,
    add_event,
)
from mesh.telemetry.upstream import UpstreamAttempt, UpstreamTelemetry
from mesh.transport.base import (
    ClientBodyError,
    RequestBodyInvalid,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTransport,
)
from mesh.tunnel import run_tunnel
from sidecar.guards import GuardRegistry, ServiceGuard
from sidecar.hedging import HedgedCall, Step

log = logging.getLogger(__name__)

_BACKPRESSURE = frozenset({429, 503})

HEDGE_LOST = "hedge_lost"
"""``error.type`` of the CLIENT span of an attempt dropped because another attempt of its
hedged call answered first."""

_LOST_TO_HEDGE: ContextVar[bool] = ContextVar("meshgate_lost_to_hedge", default=False)
"""Set in an attempt task's own context just before the task is cancelled because
another attempt won: :meth:`ResilientProxy._send`, unwinding, reads it to end the
attempt as :data:`HEDGE_LOST` rather than aborted. A context variable, so that
nothing is added to an attempt that is not cancelled (the path every call takes)."""


@dataclass(slots=True)
class _Answer:
    """A response from one attempt (not yet streamed to the client)."""

    instance: Instance
    response: UpstreamResponse
    outcome: CallOutcome
    attempt: UpstreamAttempt
    """Its telemetry; ended once the response is streamed or dropped."""


class _AttemptFailed(Exception):
    def __init__(self, instance: Instance | None, outcome: CallOutcome, detail: str) -> None:
        super().__init__(detail)
        self.instance = instance
        self.outcome = outcome


class _DeadlineExceeded(Exception):
    pass


def _outcome_of(result: object) -> CallOutcome:
    assert isinstance(result, _Answer)
    return result.outcome


def _outcome_of_exception(error: BaseException) -> CallOutcome | None:
    return error.outcome if isinstance(error, _AttemptFailed) else None


@dataclass(frozen=True)
class RetryEvent:
    service: str
    attempt: int
    outcome: CallOutcome


class ResilientProxy:
    def __init__(
        self,
        transport: UpstreamTransport,
        snapshot: Callable[[], Snapshot],
        balancer: Balancer,
        guards: GuardRegistry,
        settings: ProxySettings,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[RetryEvent], None] | None = None,
        telemetry: UpstreamTelemetry | None = None,
        mesh_tls: MeshTls | None = None,
        locality: LocalityRouter | None = None,
        concurrency: ServiceConcurrency | None = None,
        on_canary: Callable[[str, str], None] | None = None,
        roll: Callable[[], float] = random.random,
    ) -> None:
        """``telemetry`` records each attempt (CLIENT span, upstream histogram);
        ``mesh_tls`` says how to reach each instance (None: plain HTTP to every one);
        ``locality`` narrows the healthy instances to those near this sidecar (None:
        all alike), before ejection and balancing pick among them; ``concurrency``
        bounds each service's calls in flight (None: unbounded), checked before the
        breaker, so that a refusal takes no trial call of a half-open one;
        ``on_canary(route, side)`` is told the side of each call to a service with a
        canary (metrics), whose chance ``roll`` draws (uniform in [0, 1))."""
        self._on_canary = on_canary
        self._roll = roll
        self.concurrency = concurrency
        """May be replaced at any time (a reload): a call leaves the one it entered."""
        self._mesh_tls = mesh_tls
        self._locality = locality
        self._transport = transport
        self._snapshot = snapshot
        self._balancer = balancer
        self._guards = guards
        self._settings = settings
        self._clock = clock
        self._on_retry = on_retry
        self._telemetry = telemetry or UpstreamTelemetry()

    async def __call__(self, ex: Exchange) -> web.StreamResponse:
        service = ex.service or ""
        entry = self._snapshot().service(service)
        healthy = entry.healthy if entry is not None else ()
        if not healthy:  # no guard made (and no row at /breakers) for such a service
            return no_healthy_instance(ex, self._settings.no_instance_retry_after)
        guard = self._guards.for_service(service)
        instances = healthy
        canary = guard.canary
        if canary is not None:
            asked = ex.request.headers.get(canary.header) if canary.header else None
            ex.canary = choice = canary.choose(asked, self._roll())
            if self._on_canary is not None:
                self._on_canary(ex.route or service, choice.side)
            instances = choice.instances(healthy)
        locality = self._locality
        if locality is not None:
            # Never empty: a canary's side falls back to the other, a tier to all.
            instances = locality.narrow(service, healthy, instances)
        concurrency = self.concurrency
        if concurrency is None:
            return await self._guarded(ex, guard, instances)
        return await bounded(concurrency, ex, service, lambda: self._guarded(ex, guard, instances))

    async def _guarded(
        self, ex: Exchange, guard: ServiceGuard, instances: tuple[Instance, ...]
    ) -> web.StreamResponse:
        """The call through the service's breaker, with retries, its answer streamed."""
        service = guard.service
        permit = guard.breaker.acquire()
        if permit is None:
            add_event(
                ex,
                EVENT_BREAKER_REJECTED,
                {"meshgate.service": service, "meshgate.breaker.state": guard.breaker.state.value},
            )
            return _breaker_open(ex, guard)
        try:
            guard.budget.record_request()
            answer = await self._attempts(ex, guard, instances)
        except _AttemptFailed as failed:
            record_outcome(ex, guard.breaker, permit, failed.outcome, service, None)
            ex.instance = failed.instance
            if failed.outcome.error is CallError.TIMEOUT:
                return gateway_timeout(ex, str(failed))
            return bad_gateway(ex, str(failed))
        except _DeadlineExceeded:
            guard.breaker.release(permit)
            return gateway_timeout(ex, "the request's deadline passed")
        except ClientBodyError as exc:
            # The caller's body failed (malformed, too slow): nothing counts against the
            # service, and the caller gets its 4xx.
            if not permit.settled:
                guard.breaker.release(permit)
            return client_body_problem(ex, exc)
        except BaseException:
            # Cancelled (client gone) or an unexpected error: count nothing.
            if not permit.settled:
                guard.breaker.release(permit)
            raise
        record_outcome(ex, guard.breaker, permit, answer.outcome, service, None)
        ex.instance = answer.instance
        response = answer.response
        try:
            if response.status == 101:  # only ever to a request that asked to switch
                idle = self._settings.tunnel_idle_timeout
                return await run_tunnel(ex, response, idle, self._telemetry.tunnel(ex))
            return await stream_response(ex, response)
        finally:
            answer.attempt.end()

    async def _attempts(
        self, ex: Exchange, guard: ServiceGuard, instances: tuple[Instance, ...]
    ) -> _Answer:
        policy = guard.policy.retries
        request = ex.request
        body: bytes | None
        replayable = True
        stream_body = None
        if not request.body_exists:
            body = None
        elif request.content_length is not None and request.content_length <= policy.replay_limit:
            try:
                body = await request.read()
            except BadHttpMessage as exc:  # the HTTP parser refused the body's framing
                raise RequestBodyInvalid.refused_by_parser(exc) from None
        else:
            body = None
            stream_body = request.content
            replayable = False
        idempotent = is_idempotent(request.method, request.headers)
        selector = self._selector(ex, guard)
        sent = body if replayable else stream_body
        tried: set[str] = set()
        attempts = 0

        async def attempt(wait: float = policy.per_try_timeout) -> _Answer:
            """The next attempt, waiting at most ``wait`` for its answer (and no longer
            than the deadline)."""
            nonlocal attempts
            attempts += 1
            instance, breaker, permit = self._pick(guard, selector, instances, tried)
            ex.instance = instance
            return await self._send(ex, guard, instance, breaker, permit, sent, attempts, wait)

        try:
            # One attribute test when hedging is off (the default): nothing more.
            if (
                policy.hedge_on_per_try_timeout
                and idempotent
                and replayable
                and policy.max_attempts > 1
            ):
                return await self._hedged(ex, guard, attempt)
            # The first attempt is made here, and tenacity comes in only when it failed
            # in a way that may be retried: most calls take one attempt, and making and
            # running a retrier for each of them was about a third of the sidecar's
            # outbound work (8,517 -> 5,839 bytecodes a call; bench/README, session 25).
            first: _Answer | _AttemptFailed
            try:
                first = await attempt()
            except _AttemptFailed as failed:
                first = failed
            if policy.max_attempts > 1 and should_retry(first.outcome, idempotent, replayable):
                return await self._retried(ex, guard, idempotent, replayable, first, attempt)
            if isinstance(first, _AttemptFailed):
                raise first
            return first
        finally:
            if policy.attempts_header:
                ex.response_headers.append((ATTEMPTS_HEADER, str(attempts)))

    async def _retried(
        self,
        ex: Exchange,
        guard: ServiceGuard,
        idempotent: bool,
        replayable: bool,
        first: _Answer | _AttemptFailed,
        attempt: Callable[[], Awaitable[_Answer]],
    ) -> _Answer:
        """The call from its first attempt on, run by tenacity: ``first`` (that attempt's
        answer or failure) is handed to tenacity as its attempt 1, returned or raised
        again rather than sent again, and ``attempt`` makes each attempt after it. So
        the predicate (the budget spent only for a retry that happens), the waits and
        the retry events see the call as if tenacity had made every attempt."""
        policy = guard.policy.retries
        replay = [first]

        async def from_first() -> _Answer:
            if replay:
                made = replay.pop()
                if isinstance(made, _AttemptFailed):
                    raise made
                return made
            return await attempt()

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            if outcome is not None and not outcome.failed:
                result = outcome.result()
                if isinstance(result, _Answer):
                    result.response.release()
                    result.attempt.end()
                    result_outcome = result.outcome
                else:  # pragma: no cover - attempt() only returns _Answer
                    return
            else:
                error = outcome.exception() if outcome is not None else None
                if not isinstance(error, _AttemptFailed):  # pragma: no cover
                    return
                result_outcome = error.outcome
            self._retrying(ex, guard, state.attempt_number, result_outcome)

        retrying = AsyncRetrying(
            retry=retry_if_outcome(
                method_idempotent=idempotent,
                body_replayable=replayable,
                max_attempts=policy.max_attempts,
                budget=guard.budget,
                outcome_of=_outcome_of,
                outcome_of_exception=_outcome_of_exception,
            ),
            wait=wait_full_jitter(policy.backoff_base, policy.backoff_max),
            stop=stop_never,
            before_sleep=before_sleep,
        )
        # Called, not wrapped: .wraps() would copy the retrier and copy the function's
        # metadata onto a wrapper, for nothing this one-off retrier needs.
        answer: _Answer = await retrying(from_first)
        return answer

    def _retrying(
        self, ex: Exchange, guard: ServiceGuard, failed: int, outcome: CallOutcome
    ) -> None:
        """Attempt number ``failed`` ended in ``outcome`` and the call tries again: the
        log line, the SERVER span's retry event, ``on_retry``."""
        reason = outcome.error or outcome.status
        log.info(
            "retrying %s %s to %s (attempt %d failed: %s)",
            ex.method,
            ex.path,
            guard.service,
            failed,
            reason,
        )
        add_event(
            ex,
            EVENT_RETRY,
            {
                "meshgate.service": guard.service,
                "meshgate.attempt": failed,
                "meshgate.retry.reason": str(reason),
            },
        )
        if self._on_retry is not None:
            self._on_retry(RetryEvent(guard.service, failed, outcome))

    async def _hedged(
        self,
        ex: Exchange,
        guard: ServiceGuard,
        attempt: Callable[[float], Coroutine[Any, Any, _Answer]],
    ) -> _Answer:
        """The call hedged on its per-try timeout (only for an idempotent request with a
        replayable body): ``attempt(wait)`` makes each attempt, as a task of its own.

        Rules (:mod:`sidecar.hedging`): when ``per_try_timeout`` has passed since the
        latest attempt started with no usable answer, a hedge starts on an instance
        not tried yet (if the call has attempts left and the budget grants a retry)
        while the others run on; the first usable answer (one that would not be
        retried) is returned. A retryable failure is set aside while another attempt
        is in flight; once none is, it is retried as any failure would be (after the
        backoff, within ``max_attempts`` and the budget) or is the call's outcome.
        Every attempt waits for its answer until the call's end: its deadline, or
        without one ``max_attempts * per_try_timeout`` after it began.

        Guaranteed on return or raise (cancellation included): every other attempt
        has been cancelled and has finished unwinding (its connection closed, its
        instance's permit released with no outcome recorded, its CLIENT span ended as
        ``hedge_lost`` when another attempt won); an answer that came too late was
        released unread; each hedge is counted won or lost on the guard. Raises
        _AttemptFailed (no usable answer), _DeadlineExceeded, or whatever an attempt
        raised otherwise (a ClientBodyError).
        """
        policy = guard.policy.retries
        clock = self._clock
        max_attempts = policy.max_attempts
        per_try = policy.per_try_timeout
        # The attempts are not cut at per_try: they run to the deadline, which says how
        # long the caller will wait; without one, no longer than the attempts of a call
        # without hedging could have waited for their answers.
        deadline = ex.deadline
        until = clock() + max_attempts * per_try if deadline is None else deadline
        call = HedgedCall(
            per_try_timeout=per_try,
            max_attempts=max_attempts,
            until=until,
            try_acquire_retry=guard.budget.try_acquire_retry,
            clock=clock,
        )
        running: dict[asyncio.Task[_Answer], contextvars.Context] = {}
        numbers: dict[asyncio.Task[_Answer], int] = {}
        hedges: list[asyncio.Task[_Answer]] = []
        winner: asyncio.Task[_Answer] | None = None

        def launch() -> asyncio.Task[_Answer]:
            number = call.start()
            # Its own context, so that only this attempt reads _LOST_TO_HEDGE as set.
            context = contextvars.copy_context()
            task = asyncio.create_task(attempt(call.time_left()), context=context)
            running[task] = context
            numbers[task] = number
            return task

        launch()
        try:
            while True:
                done, _ = await asyncio.wait(
                    running, timeout=call.hedge_in(), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # a per-try timeout passed with no usable answer
                    if call.may_hedge():
                        hedges.append(launch())
                        add_event(
                            ex,
                            EVENT_HEDGE,
                            {"meshgate.service": guard.service, "meshgate.attempt": call.started},
                        )
                    continue
                retry: tuple[int, CallOutcome] | None = None
                for task in done:
                    del running[task]
                    try:
                        made: _Answer | _AttemptFailed = task.result()
                    except _AttemptFailed as failed:
                        made = failed
                    if winner is not None:  # answered together: the first one taken wins
                        _drop(made)
                        continue
                    step = call.ended(made.outcome)
                    if step is Step.ANSWER:
                        if isinstance(made, _AttemptFailed):  # the last in flight: no more
                            raise made
                        winner = task
                        continue
                    _drop(made)
                    if step is Step.RETRY:
                        retry = (numbers[task], made.outcome)
                if winner is not None:
                    return winner.result()
                if retry is not None:
                    self._retrying(ex, guard, *retry)
                    await asyncio.sleep(
                        full_jitter_backoff(
                            call.started, policy.backoff_base, policy.backoff_max, random.random
                        )
                    )
                    launch()
        finally:
            await _cancel_losers(running, lost=winner is not None)
            for hedge in hedges:
                if hedge is winner:
                    guard.hedges_won += 1
                else:
                    guard.hedges_lost += 1

    def _selector(self, ex: Exchange, guard: ServiceGuard) -> Selector:
        """How the call's attempts pick: by its hash key when the service's policy gives
        it one, else by the balancer."""
        policy = guard.hash_policy
        if policy is not None:
            key = policy.key(ex)
            if key is not None:
                return self._balancer.hashed(guard.service, key)
        return self._balancer.selector(guard.service)

    def _pick(
        self,
        guard: ServiceGuard,
        selector: Selector,
        instances: tuple[Instance, ...],
        tried: set[str],
    ) -> tuple[Instance, CircuitBreaker | None, Permit | None]:
        """An eligible instance, not tried yet if possible, with its breaker's permit.

        An instance whose half-open breaker has no trial slot left is passed
        over while another candidate remains; if none does, it is used anyway
        (without a permit) rather than failing the request.
        """
        ejected_at = guard.ejected_at()
        avoid_until = guard.avoid_until
        candidates: Sequence[Instance] = instances
        # With no instance ejected or avoided (nearly every call) every one is eligible,
        # which select_eligible would work out at the price of its sets and tuples.
        if ejected_at or avoid_until:
            eligibility = select_eligible(
                [i.id for i in instances],
                ejected_at=ejected_at,
                avoid_until=avoid_until,
                now=self._clock(),
                max_ejection_share=guard.policy.outlier.max_ejection_share,
            )
            allowed = set(eligibility.eligible)
            candidates = [i for i in instances if i.id in allowed]
        use_breakers = guard.policy.outlier.instance_breakers
        skipped: set[str] = set()
        while True:
            chosen = selector.pick(candidates, tried | skipped) or selector.pick(
                candidates, skipped
            )
            if chosen is None:  # every candidate refused a permit: go without one
                fallback = selector.pick(candidates, tried) or selector.pick(candidates)
                assert fallback is not None  # select_eligible never empties a non-empty list
                tried.add(fallback.id)
                return fallback, None, None
            if not use_breakers:
                tried.add(chosen.id)
                return chosen, None, None
            breaker = guard.instance_breaker(chosen.id)
            permit = breaker.acquire()
            if permit is not None:
                tried.add(chosen.id)
                return chosen, breaker, permit
            skipped.add(chosen.id)

    async def _send(
        self,
        ex: Exchange,
        guard: ServiceGuard,
        instance: Instance,
        breaker: CircuitBreaker | None,
        permit: Permit | None,
        body: bytes | StreamReader | None,
        number: int,
        per_try: float,
    ) -> _Answer:
        """Attempt ``number`` (from 1): one request to ``instance``, one CLIENT span,
        waiting at most ``per_try`` seconds for the answer (less when the deadline is
        nearer)."""
        deadline = ex.deadline
        if deadline is not None:
            left = deadline - self._clock()
            if left <= 0:
                raise _DeadlineExceeded()
            if left < per_try:  # not min(): see mesh.proxy
                per_try = left
            ex.upstream_headers[DEADLINE_HEADER] = format_remaining(left)
        connect_timeout = self._settings.connect_timeout
        if per_try < connect_timeout:
            connect_timeout = per_try
        # Writes this attempt's trace context into the headers sent below.
        attempt = self._telemetry.attempt(ex, instance, number)
        request = UpstreamRequest(
            method=ex.method,
            target=ex.target(),
            headers=ex.upstream_headers,
            body=body,
            connect_timeout=connect_timeout,
            response_timeout=per_try,
            header_block=ex.header_block(),
            upgrade=ex.upgrade is not None,
        )
        in_flight = self._balancer.in_flight
        in_flight.acquire(instance.id)
        started = self._clock()
        try:
            tls = self._mesh_tls
            response = await self._transport.send(
                instance.address,
                instance.port,
                request,
                None if tls is None else tls.for_instance(instance),
            )
        except UpstreamConnectError as exc:
            outcome = CallOutcome.failed(CallError.CONNECT, self._clock() - started)
            self._failed(ex, attempt, "connect_error", guard, instance, breaker, permit, outcome)
            raise _AttemptFailed(instance, outcome, str(exc)) from exc
        except UpstreamTimeout as exc:
            outcome = CallOutcome.failed(CallError.TIMEOUT, self._clock() - started)
            self._failed(ex, attempt, "timeout", guard, instance, breaker, permit, outcome)
            raise _AttemptFailed(instance, outcome, str(exc)) from exc
        except ClientBodyError as exc:
            # The caller's body, not the instance: no failure recorded against it.
            attempt.failed(exc.outcome)
            self._abandon(attempt, breaker, permit)
            raise
        except UpstreamError as exc:
            outcome = CallOutcome.failed(CallError.RESET, self._clock() - started)
            self._failed(ex, attempt, "reset", guard, instance, breaker, permit, outcome)
            raise _AttemptFailed(instance, outcome, str(exc)) from exc
        except BaseException:
            # Cancelled: the caller went, or (a hedged call) another attempt won.
            if _LOST_TO_HEDGE.get():
                attempt.abandoned(HEDGE_LOST)
            self._abandon(attempt, breaker, permit)
            raise
        finally:
            in_flight.release(instance.id)
        retry_after = None
        if response.status in _BACKPRESSURE:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        outcome = CallOutcome.response(
            response.status, self._clock() - started, retry_after_s=retry_after
        )
        attempt.responded(response.status)
        self._settle(ex, guard, instance, breaker, permit, outcome)
        if outcome.is_backpressure and retry_after is not None:
            guard.avoid(instance.id, min(retry_after, MAX_AVOIDANCE_S))
        return _Answer(instance, response, outcome, attempt)

    @staticmethod
    def _abandon(
        attempt: UpstreamAttempt, breaker: CircuitBreaker | None, permit: Permit | None
    ) -> None:
        """End an attempt that counts neither way: its span ends, its permit goes back."""
        attempt.end()
        if breaker is not None and permit is not None and not permit.settled:
            breaker.release(permit)

    @classmethod
    def _failed(
        cls,
        ex: Exchange,
        attempt: UpstreamAttempt,
        error_type: str,
        guard: ServiceGuard,
        instance: Instance,
        breaker: CircuitBreaker | None,
        permit: Permit | None,
        outcome: CallOutcome,
    ) -> None:
        attempt.failed(error_type)
        attempt.end()
        cls._settle(ex, guard, instance, breaker, permit, outcome)

    @staticmethod
    def _settle(
        ex: Exchange,
        guard: ServiceGuard,
        instance: Instance,
        breaker: CircuitBreaker | None,
        permit: Permit | None,
        outcome: CallOutcome,
    ) -> None:
        if breaker is not None and permit is not None:
            record_outcome(ex, breaker, permit, outcome, guard.service, instance.id)


def _drop(made: _Answer | _AttemptFailed) -> None:
    """An attempt's result the call does not use: a response is released unread (its
    connection closed) and its CLIENT span ended; a failure has ended its span already."""
    if isinstance(made, _Answer):
        made.response.release()
        made.attempt.end()


async def _cancel_losers(
    running: dict[asyncio.Task[_Answer], contextvars.Context], lost: bool
) -> None:
    """Cancel the attempts of a hedged call still ``running`` and wait until each has
    unwound (connection closed, permit released, span ended: as :data:`HEDGE_LOST` when
    ``lost``, another attempt having answered). One that finished meanwhile has its
    answer dropped; what any of them raised is retrieved, never left unread."""
    if not running:
        return
    for task, context in running.items():
        if lost:
            context.run(_LOST_TO_HEDGE.set, True)
        task.cancel()
    await asyncio.wait(running)
    for task in running:
        if task.cancelled():
            continue
        error = task.exception()
        if error is None:
            answer = task.result()
            if lost:
                answer.attempt.abandoned(HEDGE_LOST)
            _drop(answer)


def _breaker_open(ex: Exchange, guard: ServiceGuard) -> web.Response:
    left = guard.breaker.retry_after()
    return ex.problem(
        503,
        "Circuit open",
        f"the circuit breaker for {guard.service!r} is {guard.breaker.state.value}; "
        "calls fail fast until it lets a trial through",
        slug="circuit-open",
        extra={
            "service": guard.service,
            "breaker": guard.breaker.state.value,
            "retry_after_s": round(left, 3),
        },
        headers={"Retry-After": str(max(1, math.ceil(left)))},
    )
