"""The terminal handler: send the exchange to an instance and stream the answer back.

Contract:
* the instance comes from the service's healthy instances in the current
  snapshot, through the configured balancer, or through Maglev when the
  request has a hash key (its route's ``hash_policy``);
* a failed TCP connect is retried on another instance (nothing was sent, so
  this is safe for any method), up to ``connect_attempts`` instances;
* a request whose route has a retry policy (``ex.retries``: the edge's
  ``routes[].retries``, :mod:`mesh.resilience.route_retries`) is retried by it
  instead: per-try timeouts, backoff, a budget, and timeouts, resets and 5xx
  answers retried only for idempotent requests with a replayable body;
* with an :class:`~mesh.resilience.outliers.OutlierDetector` (the edge's
  ``outlier_detection``), ejected instances are left out and every attempt's
  outcome is recorded on its instance's breaker;
* with a :class:`~mesh.locality.LocalityRouter` (``discovery.locality``), the
  instances left (after the canary side and ejection) are narrowed to the proxy's
  zone, or region, while it has enough of them, before the balancer picks;
* 503 + Retry-After when the service has no healthy instance, 502 when the
  upstream fails, 504 when it does not answer in time, all as problem bodies;
* request and response bodies stream: neither is ever held whole in memory, except
  a request body a filter read whole already (``ex.body``: the edge's mirror, for a
  body of declared length within its limit);
* an upstream's answer goes to the client through the exchange's ``responder`` when
  one is set (the edge's response cache), else :func:`stream_response`; either may
  hand a copy of the body to a :class:`BodyTee` as it relays it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import StreamReader, web
from multidict import CIMultiDict

from mesh.balancing import Balancer, Selector
from mesh.config.sections import ProxyConfig
from mesh.deadline import HEADER as DEADLINE_HEADER
from mesh.deadline import format_remaining
from mesh.exchange import Exchange
from mesh.http.compression import ResponseCompression
from mesh.http.headers import end_to_end
from mesh.locality import LocalityRouter
from mesh.mtls.contexts import MeshTls
from mesh.resilience.breaker import CircuitBreaker, Permit
from mesh.resilience.concurrency import ServiceConcurrency
from mesh.resilience.outcome import CallError, CallOutcome, parse_retry_after
from mesh.resilience.outliers import OutlierDetector
from mesh.resilience.retry_policy import is_idempotent
from mesh.resilience.route_retries import RouteRetryPolicy, fits_before, reason
from mesh.snapshot import Instance, Snapshot
from mesh.telemetry.route_retries import RouteRetryMetrics
from mesh.telemetry.tracing import (
    EVENT_BREAKER_OPENED,
    EVENT_RETRY,
    EVENT_UPSTREAM_OVERFLOW,
    add_event,
)
from mesh.telemetry.upstream import UpstreamTelemetry
from mesh.transport.base import (
    ClientBody,
    ClientBodyError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamTransport,
)
from mesh.tunnel import run_tunnel

log = logging.getLogger(__name__)

# Bodies up to this size (by Content-Length) are read whole and sent in one write.
SMALL_BODY = 64 * 1024
ATTEMPTS_HEADER = "X-Mesh-Attempts"
"""Response header: how many attempts the request took (a route's retries at the edge,
a sidecar's outbound retries)."""
_BODYLESS_STATUS = frozenset({204, 304})


class BodyTee(Protocol):
    """Takes a copy of a response body while it is relayed to the client (the edge's
    cache keeps it). The relay calls :meth:`write` with each piece as it comes, then
    exactly one of :meth:`close` (the upstream's body arrived whole) or :meth:`abort`
    (it did not: the upstream failed, or the client went away, midway). A tee never
    raises and never slows the relay: one that stops wanting the copy (too large)
    drops what it has and ignores the rest itself."""

    def write(self, piece: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ProxySettings:
    connect_timeout: float = 1.0
    response_timeout: float = 15.0
    connect_attempts: int = 3
    no_instance_retry_after: int = 5
    body_timeout: float | None = None
    """Longest wait for the next piece of a client's request body (→ 408); None: no limit."""
    tunnel_idle_timeout: float = 300.0
    """A switched connection (WebSocket) with no byte either way for this long is closed."""

    @classmethod
    def of(cls, config: ProxyConfig, body_timeout: float | None = None) -> ProxySettings:
        """The settings a process's ``proxy`` section gives."""
        return cls(
            config.connect_timeout,
            config.response_timeout,
            config.connect_attempts,
            body_timeout=body_timeout,
            tunnel_idle_timeout=config.tunnel_idle_timeout,
        )


class Proxy:
    """Terminal handler shared by the edge and the sidecar."""

    def __init__(
        self,
        transport: UpstreamTransport,
        snapshot: Callable[[], Snapshot],
        balancer: Balancer,
        settings: ProxySettings,
        telemetry: UpstreamTelemetry | None = None,
        mesh_tls: MeshTls | None = None,
        outliers: OutlierDetector | None = None,
        locality: LocalityRouter | None = None,
        retry_metrics: RouteRetryMetrics | None = None,
        concurrency: ServiceConcurrency | None = None,
    ) -> None:
        """``telemetry`` records each attempt (CLIENT span, upstream histogram);
        ``mesh_tls`` says how to reach each instance (None: plain HTTP to every one);
        ``outliers`` ejects failing instances (None: every healthy one is called);
        ``locality`` prefers instances near this proxy (None: all alike);
        ``retry_metrics`` counts routes' retries (None: not counted);
        ``concurrency`` bounds each service's requests in flight (None: unbounded)."""
        self.concurrency = concurrency
        """May be replaced at any time (a reload): a request leaves the one it entered."""
        self._retry_metrics = retry_metrics
        self._mesh_tls = mesh_tls
        self._locality = locality
        self.outliers = outliers
        """May be replaced at any time (a reload): a request uses the one it started with."""
        self._transport = transport
        self._snapshot = snapshot
        self._balancer = balancer
        self._settings = settings
        self._attempts = max(1, settings.connect_attempts)
        self._telemetry = telemetry or UpstreamTelemetry()

    async def __call__(self, ex: Exchange) -> web.StreamResponse:
        service = ex.service
        if service is None:
            return ex.problem(404, "No route", f"no route for {ex.path}", slug="no-route")
        entry = self._snapshot().service(service)
        healthy = instances = entry.healthy if entry is not None else ()
        if ex.canary is not None:
            instances = ex.canary.instances(instances)
        outliers = self.outliers
        if outliers is not None:
            if outliers.judges(service):
                instances = outliers.eligible(service, instances)
            else:
                outliers = None
        locality = self._locality
        if locality is not None:
            instances = locality.narrow(service, healthy, instances)
        if not instances:
            return no_healthy_instance(ex, self._settings.no_instance_retry_after)
        concurrency = self.concurrency
        if concurrency is None:
            return await self.forward(ex, instances, outliers)
        return await bounded(
            concurrency, ex, service, lambda: self.forward(ex, instances, outliers)
        )

    async def forward(
        self,
        ex: Exchange,
        instances: tuple[Instance, ...],
        outliers: OutlierDetector | None = None,
    ) -> web.StreamResponse:
        """Pick, connect (moving on when a connect fails), and stream the response;
        ``outliers`` admits each attempt and records its outcome."""
        service = ex.service or ""
        selector = self._balancer.selector(service)
        hash_policy = ex.hash_policy
        if hash_policy is not None:
            key = hash_policy.key(ex)
            if key is not None:  # else balanced as any request
                selector = self._balancer.hashed(service, key)
        retries = ex.retries
        if retries is not None:
            return await self._retrying(ex, instances, outliers, selector, retries)
        in_flight = self._balancer.in_flight
        timed = outliers is not None and outliers.timed
        tried: set[str] = set()
        last_error: Exception | None = None
        deadline = ex.deadline
        breaker: CircuitBreaker | None = None
        permit: Permit | None = None
        for number in range(1, self._attempts + 1):
            if outliers is None:
                instance = selector.pick(instances, tried)
            else:
                instance, breaker, permit = _admitted(outliers, service, selector, instances, tried)
            if instance is None:
                break
            tried.add(instance.id)
            ex.instance = instance
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if permit is not None and breaker is not None:
                    # No call made: nothing to record, but a half-open breaker's trial
                    # permit must come back, or its trials would stay taken for good.
                    breaker.release(permit)
                return gateway_timeout(ex, "the request's time ran out")
            # Writes this attempt's trace context, which the request built below carries.
            attempt = self._telemetry.attempt(ex, instance, number)
            request = self._upstream_request(ex, left)
            in_flight.acquire(instance.id)
            # What the attempt says about the instance, for its breaker (None: nothing).
            verdict: CallOutcome | None = None
            started = time.monotonic() if timed else 0.0
            try:
                try:
                    tls = self._mesh_tls
                    upstream = await self._transport.send(
                        instance.address,
                        instance.port,
                        request,
                        None if tls is None else tls.for_instance(instance),
                    )
                except UpstreamConnectError as exc:
                    attempt.failed("connect_error")
                    verdict = _CONNECT_FAILED
                    last_error = exc
                    continue
                except UpstreamTimeout as exc:
                    attempt.failed("timeout")
                    verdict = _TIMED_OUT
                    return gateway_timeout(ex, str(exc))
                except ClientBodyError as exc:  # the client's doing, not the instance's
                    attempt.failed(exc.outcome)
                    return client_body_problem(ex, exc)
                except UpstreamError as exc:
                    attempt.failed("upstream_error")
                    verdict = _LOST
                    return bad_gateway(ex, str(exc))
                attempt.responded(upstream.status)
                if permit is not None:
                    verdict = _answered(upstream, started)
                    if verdict.retry_after_s is not None and outliers is not None:
                        # Backpressure: not a failure, but it asked for less load.
                        outliers.avoid(service, instance.id, verdict.retry_after_s)
                if upstream.status == 101:  # only ever to a request that asked to switch
                    idle = self._settings.tunnel_idle_timeout
                    return await run_tunnel(ex, upstream, idle, self._telemetry.tunnel(ex))
                return await (ex.responder or stream_response)(ex, upstream)
            finally:
                attempt.end()
                in_flight.release(instance.id)
                if permit is not None and breaker is not None:
                    if verdict is None:  # cancelled, or the client's body failed
                        breaker.release(permit)
                    else:
                        record_outcome(ex, breaker, permit, verdict, service, instance.id)
        detail = str(last_error) if last_error else "no instance could be tried"
        return bad_gateway(ex, f"could not connect to any instance of {ex.service!r}: {detail}")

    async def _retrying(
        self,
        ex: Exchange,
        instances: tuple[Instance, ...],
        outliers: OutlierDetector | None,
        selector: Selector,
        policy: RouteRetryPolicy,
    ) -> web.StreamResponse:
        """``forward`` for a request whose route retries (see
        :mod:`mesh.resilience.route_retries`): each attempt to an instance not tried
        yet where there is one, bounded by ``per_try_timeout`` and the deadline, its
        outcome recorded with ``outliers``; one CLIENT span per attempt, a
        ``meshgate.retry`` event per retry; the last answer or failure goes back."""
        service = ex.service or ""
        request = ex.request
        idempotent = ex.upgrade is None and is_idempotent(request.method, request.headers)
        replayable = True
        if ex.body is None and request.body_exists:
            size = request.content_length
            if idempotent and size is not None and size <= policy.replay_limit:
                try:  # so that every attempt can send it
                    await read_body_whole(ex, self._settings.body_timeout)
                except ClientBodyError as exc:
                    return client_body_problem(ex, exc)
            else:
                replayable = False  # streams once: only a failed connect moves on
        policy.budget.record_request()
        in_flight = self._balancer.in_flight
        timed = outliers is not None and outliers.timed
        tried: set[str] = set()
        deadline = ex.deadline
        number = 0
        # How the last attempt failed, when it had no answer to pass on.
        failure: tuple[CallOutcome, str] | None = None
        while number < policy.max_attempts:
            breaker: CircuitBreaker | None = None
            permit: Permit | None = None
            untried = len(tried) < len(instances)
            if outliers is None:
                instance = selector.pick(instances, tried if untried else set())
            else:
                instance, breaker, permit = _admitted(
                    outliers, service, selector, instances, tried if untried else set()
                )
            if instance is None:
                break
            tried.add(instance.id)
            ex.instance = instance
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                if permit is not None and breaker is not None:
                    breaker.release(permit)  # no call made: nothing to record
                _count_attempts(ex, policy, number)  # the attempts made
                return gateway_timeout(ex, "the request's time ran out")
            number += 1
            attempt = self._telemetry.attempt(ex, instance, number)
            upstream_request = self._upstream_request(ex, policy.try_time(left))
            in_flight.acquire(instance.id)
            verdict: CallOutcome | None = None
            wait: float | None = None  # before the next attempt; None: no retry
            started = time.monotonic() if timed else 0.0
            try:
                try:
                    tls = self._mesh_tls
                    upstream = await self._transport.send(
                        instance.address,
                        instance.port,
                        upstream_request,
                        None if tls is None else tls.for_instance(instance),
                    )
                except UpstreamConnectError as exc:
                    attempt.failed("connect_error")
                    verdict = _CONNECT_FAILED
                    failure = verdict, str(exc)
                    wait = self._retry(ex, policy, verdict, number, idempotent, replayable)
                except UpstreamTimeout as exc:
                    attempt.failed("timeout")
                    verdict = _TIMED_OUT
                    failure = verdict, str(exc)
                    wait = self._retry(ex, policy, verdict, number, idempotent, replayable)
                except ClientBodyError as exc:  # the client's doing, not the instance's
                    attempt.failed(exc.outcome)
                    _count_attempts(ex, policy, number)
                    return client_body_problem(ex, exc)
                except UpstreamError as exc:
                    attempt.failed("upstream_error")
                    verdict = _LOST
                    failure = verdict, str(exc)
                    wait = self._retry(ex, policy, verdict, number, idempotent, replayable)
                else:
                    attempt.responded(upstream.status)
                    verdict = _answered(upstream, started)
                    if verdict.retry_after_s is not None and outliers is not None:
                        outliers.avoid(service, instance.id, verdict.retry_after_s)
                    if upstream.status == 101:  # only ever to a request that asked to switch
                        _count_attempts(ex, policy, number)
                        idle = self._settings.tunnel_idle_timeout
                        tunnel = self._telemetry.tunnel(ex)
                        return await run_tunnel(ex, upstream, idle, tunnel)
                    wait = self._retry(ex, policy, verdict, number, idempotent, replayable)
                    if wait is None:
                        _count_attempts(ex, policy, number)
                        return await (ex.responder or stream_response)(ex, upstream)
                    upstream.release()  # not read: the connection is closed
            finally:
                attempt.end()
                in_flight.release(instance.id)
                if permit is not None and breaker is not None:
                    if verdict is None:  # cancelled, or the client's body failed
                        breaker.release(permit)
                    else:
                        record_outcome(ex, breaker, permit, verdict, service, instance.id)
            if wait is None:
                break
            if wait > 0:
                await asyncio.sleep(wait)
        _count_attempts(ex, policy, number)
        if failure is None:
            return bad_gateway(ex, f"no instance of {ex.service!r} could be tried")
        outcome, detail = failure
        if outcome.error is CallError.TIMEOUT:
            return gateway_timeout(ex, detail)
        if outcome.error is CallError.CONNECT:
            detail = f"could not connect to any instance of {ex.service!r}: {detail}"
        return bad_gateway(ex, detail)

    def _retry(
        self,
        ex: Exchange,
        policy: RouteRetryPolicy,
        outcome: CallOutcome,
        number: int,
        idempotent: bool,
        replayable: bool,
    ) -> float | None:
        """The seconds to wait before trying again after attempt ``number``, which ended
        in ``outcome`` (its backoff, ending within the deadline), the retry counted and
        traced; None: not tried again."""
        if number >= policy.max_attempts or not policy.retriable(outcome, idempotent, replayable):
            return None
        wait = policy.backoff(number)
        deadline = ex.deadline
        if not fits_before(None if deadline is None else deadline - time.monotonic(), wait):
            return None
        route = ex.route or ""
        service = ex.service or ""
        if not policy.budget.try_acquire_retry():
            if self._retry_metrics is not None:
                self._retry_metrics.exhausted(route, service)
            return None
        why = reason(outcome)
        if self._retry_metrics is not None:
            self._retry_metrics.retried(route, service, why)
        log.info(
            "retrying %s %s to %s (attempt %d failed: %s)", ex.method, ex.path, service, number, why
        )
        add_event(
            ex,
            EVENT_RETRY,
            {"meshgate.service": service, "meshgate.attempt": number, "meshgate.retry.reason": why},
        )
        return wait

    def _upstream_request(self, ex: Exchange, left: float | None) -> UpstreamRequest:
        """The request of one attempt, its timeouts within the ``left`` seconds (more
        than 0) the request has, which go upstream in the deadline header (None: no
        deadline)."""
        response_timeout = self._settings.response_timeout
        connect_timeout = self._settings.connect_timeout
        if left is not None:
            # Comparisons, not min(): in CPython 3.11 min() and max() parse their
            # arguments as keywords, about 1,300 instructions a call.
            if left < response_timeout:
                response_timeout = left
            if left < connect_timeout:
                connect_timeout = left
            ex.upstream_headers[DEADLINE_HEADER] = format_remaining(left)
        req = ex.request
        body: StreamReader | bytes | None = ex.body
        if body is None and req.body_exists:
            body = req.content
        return UpstreamRequest(
            method=ex.upstream_method or req.method,
            target=ex.target(),
            headers=ex.upstream_headers,
            body=body,
            connect_timeout=connect_timeout,
            response_timeout=response_timeout,
            header_block=ex.header_block(),
            body_timeout=self._settings.body_timeout,
            max_body_size=ex.max_body_size,
            upgrade=ex.upgrade is not None,
        )


_CONNECT_FAILED = CallOutcome.failed(CallError.CONNECT)
_TIMED_OUT = CallOutcome.failed(CallError.TIMEOUT)
_LOST = CallOutcome.failed(CallError.RESET)


_UNTIMED: dict[int, CallOutcome] = {}
"""One outcome per status, for calls nobody times (no slow-call detection): made once,
not on every request."""


def _answered(upstream: UpstreamResponse, started: float) -> CallOutcome:
    """The outcome of an attempt answered by ``upstream``, timed from ``started`` (0.0:
    untimed)."""
    status = upstream.status
    if status == 429 or status == 503:  # backpressure, when it says for how long
        retry_after = parse_retry_after(upstream.headers.get("Retry-After"), time.time())
        if retry_after is not None:
            duration = time.monotonic() - started if started else 0.0
            return CallOutcome.response(status, duration, retry_after)
    if started:
        return CallOutcome.response(status, time.monotonic() - started)
    outcome = _UNTIMED.get(status)
    if outcome is None:
        outcome = _UNTIMED[status] = CallOutcome.response(status)
    return outcome


async def read_body_whole(
    ex: Exchange, body_timeout: float | None, limit: int | None = None
) -> bytes:
    """The request's body, read whole once and kept as ``ex.body``, which every send of
    the request then takes instead of the client's stream (the edge's mirror sends it
    to a shadow too, a route's retries send it again, the external authorization check
    sends it first). Read as a streamed body is: at most ``body_timeout`` waiting for
    each piece, at most the exchange's ``max_body_size`` (and ``limit``, when given) in
    all; ClientBodyError (for :func:`client_body_problem`) when the client's body
    fails."""
    if ex.body is None:
        most = ex.max_body_size
        if limit is not None and (most is None or limit < most):
            most = limit
        body = ClientBody(ex.request.content, body_timeout, most)
        ex.body = b"".join([piece async for piece in body.pieces()])
    return ex.body


def _count_attempts(ex: Exchange, policy: RouteRetryPolicy, number: int) -> None:
    """Say in the answer how many attempts the request took (``X-Mesh-Attempts``), as the
    sidecar does, when the route's policy asks for it."""
    if policy.attempts_header:
        ex.response_headers.append((ATTEMPTS_HEADER, str(number)))


def _admitted(
    outliers: OutlierDetector,
    service: str,
    selector: Selector,
    instances: tuple[Instance, ...],
    tried: set[str],
) -> tuple[Instance | None, CircuitBreaker | None, Permit | None]:
    """The balancer's pick among the untried ``instances`` whose breaker takes a call,
    with that breaker and its permit. One that takes none now (half-open with its
    trial calls out, or open and let back in by the ejection cap) is passed over
    while another remains; otherwise it is called anyway, without a permit, rather
    than failing the request."""
    passed: set[str] | None = None  # made only for an instance passed over: rare
    while True:
        instance = selector.pick(instances, tried if passed is None else tried | passed)
        if instance is None:
            return (None if passed is None else selector.pick(instances, tried)), None, None
        breaker, permit = outliers.admit(service, instance.id)
        if permit is not None:
            return instance, breaker, permit
        if passed is None:
            passed = set()
        passed.add(instance.id)


def record_outcome(
    ex: Exchange,
    breaker: CircuitBreaker,
    permit: Permit,
    outcome: CallOutcome,
    service: str,
    instance_id: str | None,
) -> None:
    """Record ``outcome`` on ``breaker``; if that opened it, say so on the request's span."""
    trips = breaker.consecutive_trips
    breaker.record(permit, outcome)
    if breaker.consecutive_trips > trips:
        attributes: dict[str, str] = {"meshgate.service": service}
        if instance_id is not None:
            attributes["meshgate.instance"] = instance_id
        reason = breaker.last_trip_reason
        if reason is not None:
            attributes["meshgate.breaker.reason"] = reason.value
        add_event(ex, EVENT_BREAKER_OPENED, attributes)


async def stream_response(
    ex: Exchange,
    upstream: UpstreamResponse,
    tee: BodyTee | None = None,
    headers: CIMultiDict[str] | None = None,
) -> web.StreamResponse:
    """Copy status, end-to-end headers and the body from ``upstream`` to the client;
    ``tee`` gets a copy of the body as it goes (see :class:`BodyTee`). ``headers``:
    the end-to-end headers of ``upstream`` when the caller has them already (they are
    changed here).

    Once the first byte has gone to the client, an upstream failure can only
    be signalled by cutting the connection, which is what this does.
    """
    if headers is None:
        headers = end_to_end(upstream.headers)
    length = headers.popall("Content-Length", None)
    size = int(length[0]) if length and len(length) == 1 and length[0].isdigit() else None
    method = ex.request.method
    bodyless = method == "HEAD" or upstream.status in _BODYLESS_STATUS
    # The answer's compression when it is to be gzipped for this client, else None.
    gzip = ex.compression
    if gzip is not None and not gzip.decide(
        method, ex.request.headers.get("Accept-Encoding"), upstream.status, headers, size
    ):
        gzip = None
    if size is not None and size <= SMALL_BODY and not bodyless:
        return await _whole_response(ex, upstream, headers, gzip, tee)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    try:
        response.headers.extend(headers)
        ex.apply_response_headers(response)
        if gzip is not None:
            # Without a length the body goes chunked: compressed as it comes, streamed.
            response.headers["Content-Encoding"] = "gzip"
            await response.prepare(ex.request)
            await _write_gzipped(response, upstream, gzip, tee)
            return response
        if size is not None:
            if bodyless:
                response.headers["Content-Length"] = str(size)
            else:
                response.content_length = size
        await response.prepare(ex.request)
        if tee is None:
            if not bodyless:
                async for chunk in upstream.chunks():
                    await response.write(chunk)
        else:
            if not bodyless:
                async for chunk in upstream.chunks():
                    tee.write(chunk)
                    await response.write(chunk)
            tee.close()  # the body is whole, whether or not its end reaches the client
        await response.write_eof()
        return response
    except (UpstreamError, ConnectionResetError):
        # Mid-stream failure: the status line is gone, so the honest signal to
        # the client is a cut connection rather than a truncated "success".
        if ex.request.transport is not None:
            ex.request.transport.close()
        return response
    finally:
        upstream.release()
        if tee is not None:
            tee.abort()  # nothing after close(); else the copy is incomplete


async def _write_gzipped(
    response: web.StreamResponse,
    upstream: UpstreamResponse,
    compression: ResponseCompression,
    tee: BodyTee | None = None,
) -> None:
    """The upstream's body, gzipped piece by piece as it arrives, then the gzip trailer;
    ``tee`` gets the pieces as they came (not gzipped)."""
    compressor = compression.compressor()
    async for chunk in upstream.chunks():
        if tee is not None:
            tee.write(chunk)
        data = compressor.compress(chunk)
        if data:  # zlib keeps small pieces until it has enough to compress
            await response.write(data)
    if tee is not None:
        tee.close()
    await response.write(compressor.flush())
    await response.write_eof()


async def _whole_response(
    ex: Exchange,
    upstream: UpstreamResponse,
    headers: CIMultiDict[str],
    gzip: ResponseCompression | None = None,
    tee: BodyTee | None = None,
) -> web.StreamResponse:
    """A small body of known length is read whole and sent in one write (gzipped whole
    by ``gzip`` when given, its ``Content-Length`` the compressed one's); ``tee`` gets
    it whole, as it came.

    Cheaper than streaming (one write, no chunk loop), and an upstream that
    fails mid-body still gets an honest 502 since nothing was sent yet.
    """
    parts: list[bytes] | None = None
    try:
        parts = [chunk async for chunk in upstream.chunks()]
    except UpstreamTimeout as exc:
        return gateway_timeout(ex, str(exc))
    except UpstreamError as exc:
        return bad_gateway(ex, str(exc))
    finally:
        upstream.release()
        if parts is None and tee is not None:
            tee.abort()  # failed or cancelled before the whole body came
    body = b"".join(parts)
    if tee is not None:
        tee.write(body)
        tee.close()
    if gzip is not None:
        body = gzip.gzip(body)
        headers["Content-Encoding"] = "gzip"
    response = web.Response(
        status=upstream.status, reason=upstream.reason, body=body, headers=headers
    )
    ex.apply_response_headers(response)
    return response


def no_healthy_instance(ex: Exchange, retry_after: int) -> web.Response:
    return ex.problem(
        503,
        "No healthy instance",
        f"service {ex.service!r} has no healthy instance",
        slug="no-healthy-instance",
        extra={"service": ex.service},
        headers={"Retry-After": str(retry_after)},
    )


async def bounded(
    concurrency: ServiceConcurrency,
    ex: Exchange,
    service: str,
    send: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """``send()`` counted among ``service``'s requests in flight until it returns (the
    response written to the end, or a tunnel closed); refused at once (503) when the
    service has its limit in flight."""
    limit = concurrency.enter(service)
    if limit is not None:
        return overloaded(ex, limit)
    try:
        return await send()
    finally:
        concurrency.leave(service)


def overloaded(ex: Exchange, limit: int) -> web.Response:
    """503 at once: the service already has ``limit`` requests in flight from this process."""
    add_event(
        ex, EVENT_UPSTREAM_OVERFLOW, {"meshgate.service": ex.service or "", "meshgate.limit": limit}
    )
    return ex.problem(
        503,
        "Service overloaded",
        f"service {ex.service!r} has {limit} requests in flight from this proxy, its limit",
        slug="upstream-overloaded",
        extra={"service": ex.service, "limit": limit},
        headers={"Retry-After": "1"},
    )


def bad_gateway(ex: Exchange, detail: str) -> web.Response:
    return ex.problem(502, "Bad gateway", detail, slug="bad-gateway", extra=_where(ex))


def client_body_problem(ex: Exchange, exc: ClientBodyError) -> web.Response:
    """The answer to a client whose request body failed (400, 408 or 413, as ``exc``
    says). The connection is closed after it: the rest of that body may still come."""
    response = ex.problem(exc.status, exc.title, str(exc), slug=exc.slug)
    response.force_close()
    return response


def gateway_timeout(ex: Exchange, detail: str) -> web.Response:
    return ex.problem(504, "Gateway timeout", detail, slug="gateway-timeout", extra=_where(ex))


def _where(ex: Exchange) -> dict[str, str | None]:
    return {
        "service": ex.service,
        "instance": ex.instance.id if ex.instance is not None else None,
    }
