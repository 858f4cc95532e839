"""Sending copies to a shadow service: fire and forget, bounded.

A copy is a request of its own, sent by a task the request that made it never
waits for: the client's answer is neither delayed, changed nor failed by it.
Bounds, so that a slow or dead shadow costs the edge little:

* per route, at most the mirror's ``max_in_flight`` copies at once in each edge
  process; one more is dropped (counted), never queued;
* each copy at most its ``timeout``, from connecting to the last byte of the
  answer, which is read and thrown away (so the connection can be pooled again);
* a copy's failure is counted, never raised; :meth:`Mirrors.stop` cancels the
  copies still in flight.

A copy goes through the proxy's own transport, with mesh TLS when the instance
is in it, to an instance of the shadow service picked round robin among its
healthy ones in the current snapshot (no retry, no outlier detection: a copy
is never sent twice, and a shadow's failures say nothing about the service).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from multidict import CIMultiDict
from opentelemetry.trace import Span

from edge.mirror.metrics import FAILED, TIMEOUT, MirrorMetrics
from edge.mirror.policy import MirrorPolicy, shadow_host
from mesh.balancing import RoundRobin
from mesh.deadline import HEADER as DEADLINE_HEADER
from mesh.deadline import format_remaining
from mesh.exchange import Exchange
from mesh.mtls.contexts import MeshTls
from mesh.resilience.concurrency import Slots
from mesh.snapshot import Instance, Snapshot
from mesh.telemetry.metrics import status_class
from mesh.telemetry.tracing import end_client
from mesh.transport.base import UpstreamError, UpstreamRequest, UpstreamTimeout, UpstreamTransport

log = logging.getLogger("meshgate.edge.mirror")


class Mirrors:
    """The copies of one edge process: slots per route, the tasks in flight."""

    def __init__(
        self,
        transport: UpstreamTransport,
        snapshot: Callable[[], Snapshot],
        metrics: MirrorMetrics,
        *,
        connect_timeout: float,
        mesh_tls: MeshTls | None = None,
    ) -> None:
        self._transport = transport
        self._snapshot = snapshot
        self._metrics = metrics
        self._connect_timeout = connect_timeout
        self._mesh_tls = mesh_tls
        self._selectors: dict[str, RoundRobin] = {}
        self._in_flight = Slots()
        """Copies (or slots reserved for one) per route name; survives reloads."""
        self._tasks: set[asyncio.Task[None]] = set()
        """Strong references: the event loop keeps only weak ones to its tasks."""

    @property
    def metrics(self) -> MirrorMetrics:
        return self._metrics

    def in_flight(self, route: str) -> int:
        return self._in_flight.taken.get(route, 0)

    def pick(self, service: str) -> Instance | None:
        """A healthy instance of ``service`` in the current snapshot (None: none)."""
        entry = self._snapshot().service(service)
        if entry is None:
            return None
        selector = self._selectors.get(service)
        if selector is None:
            selector = self._selectors[service] = RoundRobin()
        return selector.pick(entry.healthy)

    def reserve(self, route: str, policy: MirrorPolicy) -> bool:
        """Take one of ``route``'s slots; False when they are all taken (drop the copy)."""
        return self._in_flight.take(route, policy.max_in_flight)

    def release(self, route: str) -> None:
        """Give back a slot taken by :meth:`reserve` for a copy never sent."""
        self._in_flight.give_back(route)

    def send(
        self, ex: Exchange, route: str, policy: MirrorPolicy, instance: Instance, body: bytes | None
    ) -> None:
        """Start the copy of ``ex`` (in a slot of ``route`` taken by :meth:`reserve`) to
        ``instance``, with ``body``; returns at once.

        The copy has the headers ``ex`` would go upstream with now (the identity headers
        and every header change included), ``Host`` with ``-shadow`` added, the deadline
        header for its own time, and a trace context of its own under the request's
        trace (a CLIENT span when the request is sampled)."""
        timeout = policy.timeout if policy.timeout is not None else ex.timeout
        if timeout is None:  # routing gives every request a deadline; not reached
            timeout = self._connect_timeout
        headers = CIMultiDict(ex.upstream_headers)
        headers["Host"] = shadow_host(headers.get("Host") or instance.authority)
        headers[DEADLINE_HEADER] = format_remaining(timeout)
        trace_line, span = _trace_context(ex, instance, headers)
        block = ex.upstream_header_block
        if trace_line:
            block = f"{block}\r\n{trace_line}" if block else trace_line
        request = UpstreamRequest(
            method=ex.upstream_method or ex.method,  # as the service gets it
            target=ex.target(),
            headers=headers,
            body=body,
            connect_timeout=min(self._connect_timeout, timeout),
            response_timeout=timeout,
            header_block=block,
        )
        self._metrics.decided(route, policy.service, "sent")
        self._metrics.in_flight.inc()
        task = asyncio.get_running_loop().create_task(
            self._copy(route, policy.service, instance, request, span, timeout)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _copy(
        self,
        route: str,
        service: str,
        instance: Instance,
        request: UpstreamRequest,
        span: Span | None,
        within_s: float,
    ) -> None:
        status: int | None = None
        result: str | None = None
        try:
            async with asyncio.timeout(within_s):
                tls = self._mesh_tls
                peer = None if tls is None else tls.for_instance(instance)
                upstream = await self._transport.send(
                    instance.address, instance.port, request, peer
                )
                status = upstream.status
                try:
                    async for _ in upstream.chunks():
                        pass  # read to the end, so the connection goes back to the pool
                finally:
                    upstream.release()
            result = status_class(status)
        except (TimeoutError, UpstreamTimeout):
            result = TIMEOUT
        except UpstreamError:
            result = FAILED
        except Exception:  # never out of a task nobody awaits
            log.debug("copy to %s failed", instance.id, exc_info=True)
            result = FAILED
        finally:
            self.release(route)
            self._metrics.in_flight.dec()
            if result is None:  # cancelled: the edge is stopping
                end_client(span, status, "aborted")
            else:
                self._metrics.done(route, service, result)
                failed = result in (TIMEOUT, FAILED)
                end_client(span, status, result if failed else None)

    async def settled(self) -> None:
        """Until every copy in flight now has ended (each within its timeout)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the copies still in flight, and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _trace_context(
    ex: Exchange, instance: Instance, headers: CIMultiDict[str]
) -> tuple[str, Span | None]:
    """The copy's trace context under the request's trace: the header line to send (with
    W3C headers only; otherwise it is written into ``headers``) and its CLIENT span when
    the request is sampled. ("", None) when the request is not traced."""
    trace = ex.trace
    if trace is None:
        return "", None
    # The tracing writes an attempt's context on the exchange (its attempt header line,
    # or its upstream headers): pointed at the copy's headers for the call, then put
    # back, so the request's own attempt context stays as it is. Cheaper than a copy
    # of the exchange, and safe: nothing else runs in between (no await).
    own_headers, own_line = ex.upstream_headers, ex.attempt_header_block
    ex.upstream_headers = headers
    try:
        # Sampled: attempt 1, a CLIENT span of its own, child of the SERVER span. Not
        # sampled: as a retry (2) would, a fresh span id, sampled flag 0, nothing recorded.
        span = trace.client_attempt(ex, instance, 1 if trace.span is not None else 2)
        line = ex.attempt_header_block
    finally:
        ex.upstream_headers, ex.attempt_header_block = own_headers, own_line
    if span is not None:
        span.set_attribute("meshgate.mirror", True)
    # Unchanged: the context went into ``headers`` (not W3C only); never the request's line.
    return ("" if line is own_line else line), span
