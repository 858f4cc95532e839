"""Applying a request's faults: hold it, then answer for the service or let it go on.

:meth:`FaultInjection.apply` is the part a filter of the edge or the sidecar
shares, once it knows which :class:`~mesh.faults.policy.FaultPolicy` covers the
request:

* **delay**: the request waits ``delay_s`` before going on, bounded by its
  deadline (``Exchange.deadline``): a delay that reaches the deadline ends at it
  with the 504 ``gateway-timeout`` problem any late request gets, never later.
  What goes on afterwards has the deadline's rest (the proxy reads the clock);
* **abort**: a problem answer with the configured status (``fault-injected``,
  naming the service), and the service is not called;
* every response to a request under a fault carries ``X-Meshgate-Fault``
  (``delay``, ``abort`` or ``delay, abort``), so a caller can tell an injected
  failure from a real one; the request's span gets a ``meshgate.fault.injected``
  event per fault; ``meshgate_faults_*`` count them.

With the policy's ``headers: true``, the control headers are removed from what
is sent on: a fault asked for is injected at the first hop that honours it,
not again at every hop behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry.util.types import AttributeValue

from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.faults.metrics import FaultMetrics
from mesh.faults.policy import CONTROL_HEADERS, Fault, FaultPolicy
from mesh.proxy import gateway_timeout
from mesh.telemetry.tracing import EVENT_FAULT_INJECTED, add_event

FAULT_HEADER = "X-Meshgate-Fault"
"""Response header: which faults were injected into this request."""
PROBLEM_SLUG = "fault-injected"
"""The abort's problem ``type`` ends with this."""

Sleep = Callable[[float], Awaitable[None]]


class FaultInjection:
    def __init__(
        self,
        metrics: FaultMetrics,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``clock`` is the one ``Exchange.deadline`` is on (monotonic seconds)."""
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep

    async def apply(
        self, ex: Exchange, policy: FaultPolicy, next_handler: Handler
    ) -> web.StreamResponse:
        """``next_handler(ex)`` under the faults ``policy`` draws for ``ex`` (if any)."""
        headers = None
        if policy.honours_headers:
            headers = ex.request.headers
            for name in CONTROL_HEADERS:
                ex.upstream_headers.popall(name, None)
        fault = policy.draw(headers)
        if fault is None:
            return await next_handler(ex)
        service, route = ex.service or "", ex.route or ""
        if not policy.admit():
            self._metrics.overflow.labels(service, route).inc()
            return await next_handler(ex)
        active = self._metrics.active.labels(service, route)
        active.inc()
        try:
            answer = await self._inject(ex, fault, service, route)
        finally:
            policy.release()
            active.dec()
        if answer is not None:
            return answer
        return await next_handler(ex)

    async def _inject(
        self, ex: Exchange, fault: Fault, service: str, route: str
    ) -> web.Response | None:
        """Hold ``ex`` and answer for the service, or None once it may go on."""
        injected = self._metrics.injected
        delay_s = fault.delay_s
        if delay_s is not None:
            injected.labels("delay", service, route).inc()
            ms = round(delay_s * 1000)
            add_event(
                ex,
                EVENT_FAULT_INJECTED,
                {"meshgate.fault.kind": "delay", "meshgate.fault.delay_ms": ms},
            )
            deadline = ex.deadline
            left = deadline - self._clock() if deadline is not None else None
            if left is not None and delay_s >= left:
                ex.response_headers.append((FAULT_HEADER, "delay"))
                if left > 0:
                    await self._sleep(left)
                return gateway_timeout(
                    ex, f"the request's deadline passed during an injected delay of {ms} ms"
                )
            await self._sleep(delay_s)
        status = fault.abort_status
        if status is None:
            ex.response_headers.append((FAULT_HEADER, "delay"))
            return None
        injected.labels("abort", service, route).inc()
        attributes: dict[str, AttributeValue] = {
            "meshgate.fault.kind": "abort",
            "meshgate.fault.status": status,
        }
        add_event(ex, EVENT_FAULT_INJECTED, attributes)
        kinds = "delay, abort" if delay_s is not None else "abort"
        ex.response_headers.append((FAULT_HEADER, kinds))
        return ex.problem(
            status,
            "Fault injected",
            f"fault injection answered for {service or 'the service'} with {status}; "
            "the service was not called",
            slug=PROBLEM_SLUG,
            extra={"service": service or None, "fault": "abort"},
        )
