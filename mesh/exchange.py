"""The per-request context that filters read and write.

One :class:`Exchange` is created by the ingress for every request, after the
path has been normalised and the hop-by-hop headers removed. Filters decide on
``path`` (never on the raw target) and edit ``upstream_headers``; the proxy
sends exactly those headers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from mesh.http.headers import header_block_items
from mesh.http.problem import problem_response
from mesh.snapshot import Instance

if TYPE_CHECKING:
    from mesh.canary import CanaryChoice
    from mesh.hash_policy import HashPolicy
    from mesh.http.compression import ResponseCompression
    from mesh.resilience.route_retries import RouteRetryPolicy
    from mesh.telemetry.tracing import HopTrace
    from mesh.transport.base import UpstreamResponse

Responder = Callable[["Exchange", "UpstreamResponse"], Awaitable[web.StreamResponse]]
"""What answers the client once an upstream's response head is in (see
:attr:`Exchange.responder`)."""


def merge_vary(existing: str | None, more: str) -> str:
    """``existing`` (a ``Vary`` value, or None) with the names in ``more`` it lacks."""
    if not existing:
        return more
    if existing.strip() == "*":
        return existing
    have = {name.strip().lower() for name in existing.split(",")}
    extra = [name.strip() for name in more.split(",") if name.strip().lower() not in have]
    return ", ".join([existing, *extra]) if extra else existing


@dataclass(slots=True, eq=False)
class Exchange:
    request: web.BaseRequest
    path: str
    """Normalised path (no query); the one path used for every decision."""
    query: str
    request_id: str
    client_ip: str
    upstream_headers: CIMultiDict[str]
    """End-to-end request headers as they will be sent upstream; filters edit them."""
    started: float = field(default_factory=time.monotonic)
    service: str | None = None
    """Service the request goes to, set by routing."""
    route: str | None = None
    """Name of the matched route (for logs and metrics)."""
    upstream_path: str | None = None
    """Path to send upstream when it differs from ``path`` (prefix rewrite)."""
    timeout: float | None = None
    """Seconds the whole exchange may take from ``started`` (the request's deadline)."""
    max_body_size: int | None = None
    """Most bytes the request body may have (set by routing; None: no limit)."""
    instance: Instance | None = None
    canary: CanaryChoice | None = None
    """The side of its route's canary this request goes to (set by routing); None: the
    route has none, every healthy instance may take it."""
    hash_policy: HashPolicy | None = None
    """Where the request's session-affinity key comes from (its route's, set by
    routing); the proxy reads the key only when there is one. None: no affinity."""
    retries: RouteRetryPolicy | None = None
    """What the request's route retries (set by the edge's routing); None: only a
    failed connect moves on to another instance."""
    upgrade: str | None = None
    """The protocol the request asks to switch to and a listener allows (``Upgrade``,
    e.g. ``websocket``), set by the ingress; None for an ordinary request."""
    upstream_method: str | None = None
    """The method sent to the service when not the client's: the edge's response cache
    sends a HEAD it would store on as a GET (its client gets the head alone). None: the
    client's method."""
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    """Headers to set on whatever response goes back (request id, rate limits, ...); one
    entry per name, each replacing any header of that name the upstream sent."""
    vary: str = ""
    """Request headers the answer depends on, added to the response's ``Vary`` (merged
    with whatever the upstream's says), e.g. ``Origin`` for CORS; "" for none."""
    response_drops: tuple[str, ...] = ()
    """Header names removed from whatever response goes back (the upstream's copies),
    before ``response_headers`` are set; () for none."""
    body: bytes | None = None
    """The request body, read whole already (by the edge's mirror, which sends it to a
    shadow too): sent instead of the client's stream. None: the body streams as it comes."""
    compression: ResponseCompression | None = None
    """How the service's answer may be compressed for the client (set by the edge's
    compression filter); None: sent as the service encoded it."""
    responder: Responder | None = None
    """What turns the upstream's answer into the client's, when not the proxy's own
    streaming (:func:`mesh.proxy.stream_response`): called with the exchange and the
    upstream response whose head is in (never a 101), it answers the client and releases
    the upstream response. Set by the edge's response cache for its routes (it may keep
    a copy of the body, or answer from a stored response instead); None: streamed as it
    comes."""
    attrs: dict[str, Any] = field(default_factory=dict)
    upstream_header_block: str = ""
    """Header lines sent upstream after ``upstream_headers``, already rendered:
    ``"Name: value"`` lines joined by CRLF (no trailing CRLF), or "". For headers
    a filter sets the same way for many requests (the identity headers): it
    keeps the block per caller, and a request costs one attribute store, not a
    multidict insert and a serialised line per header. The writer guarantees
    every name is a valid field name that ``upstream_headers`` does not hold,
    each once, and no value holds CR or LF. One writer: the edge's identity
    headers, which replace it when set again."""
    trace: HopTrace | None = None
    """This hop's trace of the request (set by the tracing filter; None when not traced)."""
    trace_id: str | None = None
    """The request's trace id, 32 hex digits, once the tracing filter has set it (None
    when not traced): what problem bodies and access logs name."""
    attempt_header_block: str = ""
    """Header lines for the current upstream attempt alone, rendered like
    ``upstream_header_block`` and sent after it, or "": the attempt's W3C
    ``traceparent``, which the tracing (:mod:`mesh.telemetry.tracing`) writes as
    the request starts and again for each later attempt. A rendered line, not an
    ``upstream_headers`` entry: every traced request writes it, and a multidict
    insert plus its serialisation cost several times a string's format. The
    writer guarantees what ``upstream_header_block``'s does, and that
    ``upstream_headers`` holds no header of the same name (the tracing removes
    an incoming one)."""

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def deadline(self) -> float | None:
        """Monotonic time by which the exchange must be done, or None for no deadline."""
        return self.started + self.timeout if self.timeout is not None else None

    def upstream_items(self) -> list[tuple[str, str]]:
        """Every header sent upstream, in order: ``upstream_headers``, then the blocks'."""
        return [*self.upstream_headers.items(), *header_block_items(self.header_block())]

    def header_block(self) -> str:
        """The rendered lines sent after ``upstream_headers`` on this attempt: the
        request's block, then the attempt's (CRLF between them; "" for none)."""
        block, attempt = self.upstream_header_block, self.attempt_header_block
        if not attempt:
            return block
        return f"{block}\r\n{attempt}" if block else attempt

    def target(self) -> str:
        """Path and query to send upstream."""
        path = self.upstream_path if self.upstream_path is not None else self.path
        return f"{path}?{self.query}" if self.query else path

    def problem(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        slug: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """A JSON problem reply carrying this request's id and trace id."""
        return problem_response(
            status,
            title,
            detail,
            self.request_id,
            slug=slug,
            extra=extra,
            headers=headers,
            trace_id=self.trace_id,
        )

    def apply_response_headers(self, response: web.StreamResponse) -> None:
        """Set ``response_headers`` on ``response`` once (call before it is prepared).

        ``response_drops`` are removed first; then each of ``response_headers`` replaces
        the upstream's header of the same name, if any; ``vary`` is merged into the
        response's ``Vary``.
        """
        if (self.response_headers or self.vary or self.response_drops) and not response.prepared:
            if self.response_drops:
                for name in self.response_drops:
                    response.headers.popall(name, None)
                self.response_drops = ()
            if self.response_headers:
                # One update() call: a third of the cost of setting them one by one.
                response.headers.update(self.response_headers)
                self.response_headers = []
            if self.vary:
                response.headers["Vary"] = merge_vary(response.headers.get("Vary"), self.vary)
                self.vary = ""
