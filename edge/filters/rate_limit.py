"""Rate-limit filter: after routing, draw from every bucket of the request's policies at once.

For the matched route (``ex.attrs["route"]``) it takes the policies that
apply, computes the request's buckets from the caller (``ex.attrs["identity"]``,
anonymous when absent), the client address, the route and the headers, and
asks the limiter once, so that tokens are taken from all of them or none.
Then:

* admitted: the request goes on, and its response carries the RateLimit-*
  headers;
* refused by a limit: 429 problem with ``Retry-After`` naming the policy;
* refused because Redis is failed and a policy is ``closed``: 503 problem.

A route with no policy, or a caller no policy counts, passes untouched.

For telemetry, the decision is left in ``ex.attrs["rate_limit"]`` (the
:class:`~edge.ratelimit.limiter.LimitResult`, which the access log reads); a
sampled request gets a ``ratelimit`` child span around the check, and a
refusal adds the ``meshgate.ratelimit.refused`` event to the request's span
(policy names and numbers only, never a key).

Every request of a limited route passes here, so the filter is a plain
function (see :class:`mesh.chain.Filter`): when the limiter answers at once
(the in-process fallback, a bucket known to be empty, a failure mode) it
hands back the next handler's own awaitable, adding no coroutine to the
request's chain; only a check that waits for Redis, or a sampled request,
runs in a coroutine of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from aiohttp import web

from edge.ratelimit.caller import IDENTITY_ATTR
from edge.ratelimit.limiter import Limiter, LimitRequest, LimitResult
from edge.ratelimit.policies import PolicyBook
from edge.ratelimit.responses import problem_fields, rate_limit_headers
from mesh.chain import Handler, answered
from mesh.exchange import Exchange
from mesh.telemetry.tracing import EVENT_RATE_LIMITED, add_event, child_span

RESULT_ATTR = "rate_limit"
"""``Exchange.attrs`` key of the request's :class:`LimitResult`."""

SPAN_NAME = "ratelimit"
"""Name of the child span a sampled request gets around its check."""


class RateLimitFilter:
    """Runs after routing (and after authentication); answers 429/503 itself when refused."""

    def __init__(self, book: PolicyBook, limiter: Limiter) -> None:
        self._book = book
        self._limiter = limiter

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        attrs = ex.attrs
        limits = self._book.limits_for(
            attrs.get("route"), attrs.get(IDENTITY_ATTR), ex.client_ip, ex.upstream_headers
        )
        if not limits:
            return next_handler(ex)
        trace = ex.trace
        if trace is not None and trace.span is not None:
            return self._traced(ex, next_handler, limits)
        decided = self._limiter.check_nowait(limits)
        if isinstance(decided, LimitResult):  # answered without waiting: no coroutine needed
            return self._apply(ex, next_handler, decided)
        return self._after(ex, next_handler, decided)

    async def _after(
        self, ex: Exchange, next_handler: Handler, pending: Awaitable[LimitResult]
    ) -> web.StreamResponse:
        """The rest of the request once a check that had to wait (for Redis) is answered."""
        result = await pending
        # _apply, written out for the admitted case: one call and one await less.
        if not result.allowed:
            return await self._apply(ex, next_handler, result)
        ex.attrs[RESULT_ATTR] = result
        headers = result.headers  # rate_limit_headers' first case (one call less)
        ex.response_headers.extend(headers if headers is not None else rate_limit_headers(result))
        return await next_handler(ex)

    async def _traced(
        self,
        ex: Exchange,
        next_handler: Handler,
        limits: Sequence[LimitRequest],
    ) -> web.StreamResponse:
        """A sampled request: the check inside a ``ratelimit`` child span of the SERVER span."""
        with child_span(ex, SPAN_NAME) as span:
            decided = self._limiter.check_nowait(limits)
            result = decided if isinstance(decided, LimitResult) else await decided
            if span is not None:
                # One call: the span locks and checks its limits once per call.
                span.set_attributes(
                    {
                        "meshgate.ratelimit.source": result.source,
                        "meshgate.ratelimit.allowed": result.allowed,
                        "meshgate.ratelimit.degraded": result.degraded,
                    }
                )
        return await self._apply(ex, next_handler, result)

    def _apply(
        self, ex: Exchange, next_handler: Handler, result: LimitResult
    ) -> Awaitable[web.StreamResponse]:
        """Record ``result``, add its headers, and pass the request on or answer the refusal."""
        ex.attrs[RESULT_ATTR] = result
        ex.response_headers.extend(rate_limit_headers(result))
        if result.allowed:
            return next_handler(ex)
        _trace_refusal(ex, result)
        fields = problem_fields(result, self._counts_by)
        slug = "rate-limited" if result.status == 429 else "rate-limits-unavailable"
        return answered(
            ex.problem(
                result.status, fields["title"], fields["detail"], slug=slug, extra=fields["extra"]
            )
        )

    def _counts_by(self, name: str) -> tuple[str, ...]:
        policy = self._book.policies.get(name)
        return policy.dimensions if policy is not None else ()


def _trace_refusal(ex: Exchange, result: LimitResult) -> None:
    refused = result.refused_by
    policies = (
        refused.request.policy.name
        if refused is not None
        else ",".join(sorted({r.policy.name for r in result.requests}))
    )
    add_event(
        ex,
        EVENT_RATE_LIMITED,
        {
            "meshgate.ratelimit.policy": policies,
            "meshgate.ratelimit.source": result.source,
            "http.response.status_code": result.status,
            "meshgate.ratelimit.retry_after_s": result.retry_after_seconds,
        },
    )
