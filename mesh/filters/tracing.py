"""Tracing filter: one SERVER span per request received (when sampled), context for every hop.

Placed right after the metrics filter, so that its span covers everything
the hop does, authentication and rate limiting included. Through
:meth:`mesh.telemetry.tracing.Tracing.start_request` it sets ``ex.trace``
(which the proxies use for each attempt's context and CLIENT span) and
``ex.trace_id`` (which problem bodies and access logs name), and with
``traceresponse`` it returns the trace id to the caller in a W3C
``traceresponse`` header.

``http_route`` tells the span's ``http.route`` (the matched route's path
template) once the request is done; without it the span has none.

Requests for ``untraced_paths`` (e.g. the health check Consul sends every
second) run without a trace: their headers pass through untouched.

It fuses with the filter right after it (:func:`mesh.chain.fuse_adjacent`,
:meth:`TracingFilter.fuse_next`): one chain level doing the tracing, then
exactly that filter's work, which saves every request a level's call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from mesh.chain import Filter, FusibleFilter, Handler, filter_call
from mesh.exchange import Exchange
from mesh.telemetry.tracing import HopTrace, Tracing


class TracingFilter:
    def __init__(
        self,
        tracing: Tracing,
        *,
        traceresponse: bool = False,
        untraced_paths: Iterable[str] = (),
        http_route: Callable[[Exchange], str | None] | None = None,
        following: Filter | None = None,
    ) -> None:
        self._tracing = tracing
        self._traceresponse = traceresponse
        self._untraced = frozenset(untraced_paths)
        self._http_route = http_route
        self._following = following
        """The filter fused into this one (see fuse_next): run after the tracing."""
        self._then: Filter | None = None if following is None else filter_call(following)
        self._unsampled = tracing.unsampled
        """The shared trace of unsampled requests (W3C only): compared by identity, which
        in CPython 3.11 costs far less than reading its class-level ``span``."""

    def fuse_next(self, following: Filter) -> TracingFilter | None:
        """This filter and ``following`` (the filter right after it) as one chain level:
        the tracing, then exactly ``following``'s work with the same next handler.

        None (two levels) when this one has fused already, or when ``following``
        may fuse with its own next filter (:class:`mesh.chain.FusibleFilter`):
        taking it would undo that fusion.
        """
        if self._following is not None or isinstance(following, FusibleFilter):
            return None
        return TracingFilter(
            self._tracing,
            traceresponse=self._traceresponse,
            untraced_paths=self._untraced,
            http_route=self._http_route,
            following=following,
        )

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        """The chain's filter call: a coroutine that answers ``ex``.

        A plain function rather than ``async def``: an unsampled (or untraced)
        request has nothing to do on the way out, so it gets the next
        handler's own coroutine, without a coroutine of this filter wrapped
        around it (one frame fewer to create and to pass through at every
        suspension, on every request). Only a sampled request, whose span
        ends with the response, gets :meth:`_traced`. An error raised here is
        raised where the caller calls the handler, which in the chain is the
        ``await`` of the filter before (the same ``try``). Fused with a
        following filter, that filter's call takes the next handler's place.
        """
        then = self._then
        untraced = self._untraced
        # Empty at the edge: then no request's path is hashed for the look-up.
        if untraced and ex.path in untraced:
            return next_handler(ex) if then is None else then(ex, next_handler)
        trace = self._tracing.start_request(ex, self._traceresponse)
        if trace is self._unsampled or trace.span is None:
            return next_handler(ex) if then is None else then(ex, next_handler)
        return self._traced(ex, next_handler, trace)

    async def _traced(
        self, ex: Exchange, next_handler: Handler, trace: HopTrace
    ) -> web.StreamResponse:
        status = 500
        error: str | None = None
        then = self._then
        try:
            response = await (next_handler(ex) if then is None else then(ex, next_handler))
            status = response.status
            return response
        except BaseException as exc:
            error = type(exc).__qualname__
            raise
        finally:
            http_route = self._http_route(ex) if self._http_route is not None else None
            trace.end_server(ex, status, error, http_route)
