"""External authorization decisions without I/O: what the check carries, what its answer
means, and what reaches the service and the client.

The check (:func:`check_headers`, :func:`check_target`) is the request's method, and
its path (normalised, before any rewrite) and query behind the ``path_prefix``, with:

* the edge's own view of the request: ``X-Forwarded-For``, ``-Proto`` and ``-Host``
  (the client's ``Host``), ``X-Forwarded-Method`` and ``X-Forwarded-Uri`` (what
  services written for Traefik's ForwardAuth or nginx's ``auth_request`` read), and
  ``X-Request-Id``;
* the client's headers named in ``allowed_request_headers``, as they go on at that
  point (so neither hop-by-hop headers, nor those the edge strips from every request,
  such as the identity headers, ever reach the check); credentials (``Authorization``,
  ``X-API-Key``) as the client sent them, since the edge's own authentication removes
  them from what goes on;
* the identity the edge verified, as the identity headers the service will get
  (``auth.identity.claims``), so the authorization service can decide on roles;
* ``check_headers``, the route's context headers, and the trace context (the check is
  a CLIENT span of the request's trace);
* ``Content-Type`` and the body only with ``with_request_body``.

An answer (:func:`verdict`) is ``allowed`` (2xx), ``error`` (5xx: the service could
not decide; so are no answer and a timeout, decided by the caller) or ``denied``
(anything else). A denial goes to the client as :func:`denial_status` says, with the
``allowed_client_headers`` of the answer, and its body when :func:`passes_through`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping, istr

from edge.headers.config import MANAGED_REQUEST, MANAGED_RESPONSE
from mesh.deadline import HEADER as DEADLINE_HEADER
from mesh.http.headers import HOP_BY_HOP
from mesh.http.request_id import HEADER as REQUEST_ID_HEADER
from mesh.identity.headers import header_keys, remove_managed
from mesh.mtls.spiffe import CLIENT_CERT_HEADER
from mesh.telemetry.propagation import B3_MULTI, B3_SINGLE, BAGGAGE, TRACEPARENT, TRACESTATE

MARKER: Final = "X-Meshgate-Ext-Authz"
"""Set on a request let through by ``failure_mode: allow`` (Envoy's
``x-envoy-auth-failure-mode-allowed``); removed from every client request."""
FAILED_OPEN: Final = "failed-open"
""":data:`MARKER`'s value."""
CONTEXT_PREFIX: Final = "X-Ext-Authz-Context-"
"""A route's ``context`` keys become headers of the check with this prefix."""
MAX_ANSWER_BYTES: Final = 64 * 1024
"""Most of an answer's body the edge reads; a longer body is not kept (nor passed)."""

FORWARDED_METHOD: Final = "X-Forwarded-Method"
FORWARDED_URI: Final = "X-Forwarded-Uri"
_EDGE_VIEW = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", REQUEST_ID_HEADER)
"""Headers of the request as it goes on that the check always carries (the edge wrote them)."""

CREDENTIALS: Final = frozenset({"authorization", "x-api-key"})
"""Client headers read from the request as the client sent it: the edge's authentication
removes them from what goes on (unless ``auth.forward_credentials``)."""

_TRACE_CONTEXT = frozenset(
    {TRACEPARENT, TRACESTATE, BAGGAGE, B3_SINGLE, *(name.lower() for name in B3_MULTI)}
)
_OWN = frozenset({MARKER.lower(), CLIENT_CERT_HEADER.lower(), DEADLINE_HEADER.lower()})

NOT_FROM_CLIENT: Final = frozenset(
    {
        *HOP_BY_HOP,
        "host",
        "content-length",
        "expect",
        REQUEST_ID_HEADER.lower(),
        *(name.lower() for name in _EDGE_VIEW),
        FORWARDED_METHOD.lower(),
        FORWARDED_URI.lower(),
        *_TRACE_CONTEXT,
        *_OWN,
    }
)
"""Names the edge writes on the check itself: not in ``allowed_request_headers`` nor
``check_headers`` (and neither are the identity headers, nor the context prefix)."""
NOT_UPSTREAM: Final = frozenset({*MANAGED_REQUEST, *_TRACE_CONTEXT, *_OWN})
"""Names meshgate writes on the request it sends on (framing, ``Host``, the request id,
deadline, trace context, ``X-Forwarded-*``): not in ``allowed_upstream_headers`` (nor
are the identity headers)."""
NOT_TO_CLIENT: Final = frozenset({*MANAGED_RESPONSE, "content-type"})
"""Names meshgate writes on its answers (framing, the request id, ``traceresponse``, the
body's type): not in ``allowed_client_headers``."""

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
"""Answers a client follows to another place (a login page): passed on with ``Location``."""
_JSON_TYPES = frozenset({"application/json", "application/problem+json"})

Verdict = Literal["allowed", "denied", "error"]


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """A route's own ``ext_authz`` (None on a route: the edge-wide default applies)."""

    disabled: bool
    """True: the route's requests are never checked."""
    context: tuple[tuple[str, str], ...] = ()
    """Headers added to the route's checks (``X-Ext-Authz-Context-<key>``, value)."""

    def describe(self) -> dict[str, Any]:
        prefix = len(CONTEXT_PREFIX)
        return {"disabled": self.disabled, "context": {k[prefix:]: v for k, v in self.context}}


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """The edge-wide section, made ready for the filter (see
    :class:`edge.ext_authz.config.ExtAuthzConfig` for each key)."""

    path_prefix: str = ""
    timeout: float = 1.0
    allow_on_error: bool = False
    status_on_error: int = 503
    check_by_default: bool = True
    request_names: tuple[istr, ...] = (istr("Authorization"), istr("Cookie"))
    fixed: tuple[tuple[str, str], ...] = ()
    body_max: int | None = None
    upstream_names: tuple[istr, ...] = ()
    upstream_keys: frozenset[str] = frozenset()
    """:data:`upstream_names`' comparison keys (:func:`mesh.identity.headers.header_keys`)."""
    client_names: frozenset[str] = frozenset({"www-authenticate", "location", "set-cookie"})
    """Lower case."""

    @classmethod
    def of(
        cls,
        *,
        path_prefix: str,
        timeout: float,
        failure_mode: str,
        status_on_error: int,
        check_by_default: bool,
        request_names: Iterable[str],
        fixed: Mapping[str, str],
        body_max: int | None,
        upstream_names: Iterable[str],
        client_names: Iterable[str],
    ) -> CheckSettings:
        upstream = tuple(upstream_names)
        return cls(
            path_prefix=path_prefix,
            timeout=timeout,
            allow_on_error=failure_mode == "allow",
            status_on_error=status_on_error,
            check_by_default=check_by_default,
            request_names=_distinct(request_names),
            fixed=tuple(fixed.items()),
            body_max=body_max,
            upstream_names=_distinct(upstream),
            upstream_keys=header_keys(upstream),
            client_names=frozenset(name.lower() for name in client_names),
        )

    def checks(self, route: RouteCheck | None) -> bool:
        """Whether a route with this own setting (None: none) is checked."""
        return self.check_by_default if route is None else not route.disabled


def _distinct(names: Iterable[str]) -> tuple[istr, ...]:
    """``names`` as istr, each name once whatever its case, in their order."""
    return tuple(istr(name) for name in {name.lower(): name for name in names}.values())


def check_target(path_prefix: str, path: str, query: str) -> str:
    """The check's request target: ``path_prefix`` before the request's path, its query
    after (``/check`` + ``/api/x`` + ``a=1`` → ``/check/api/x?a=1``)."""
    target = path_prefix + path
    return f"{target}?{query}" if query else target


def check_headers(
    settings: CheckSettings,
    *,
    method: str,
    uri: str,
    upstream: MultiMapping[str],
    client: MultiMapping[str],
    identity: Iterable[tuple[str, str]] = (),
    context: Iterable[tuple[str, str]] = (),
    trace: Iterable[tuple[str, str]] = (),
    content_type: str | None = None,
) -> CIMultiDict[str]:
    """The headers of the check of one request (see the module docstring): ``uri`` its
    path and query as the client asked, ``upstream`` its headers as they go on now,
    ``client`` as the client sent them, ``identity`` the verified caller's identity
    headers, ``context`` the route's, ``trace`` the check's trace context, and
    ``content_type`` the body's when the body is sent. No ``Host`` (the transport
    writes the authorization service's) and no framing header."""
    out: CIMultiDict[str] = CIMultiDict()
    for name in _EDGE_VIEW:
        value = upstream.get(name)
        if value is not None:
            out[name] = value
    out[FORWARDED_METHOD] = method
    out[FORWARDED_URI] = uri
    for name in settings.request_names:
        source = client if name.lower() in CREDENTIALS else upstream
        for value in source.getall(name, ()):
            out.add(name, value)
    for name, value in identity:
        out[name] = value
    for pairs in (settings.fixed, context):
        for name, value in pairs:
            out[name] = value
    traced = False
    for name, value in trace:
        out[name] = value
        traced = True
    if traced:
        # With W3C only these travel as received, in the request's own headers.
        for name in (TRACESTATE, BAGGAGE):
            if name not in out:
                for value in upstream.getall(name, ()):
                    out.add(name, value)
    if content_type is not None:
        out["Content-Type"] = content_type
    return out


def verdict(status: int) -> Verdict:
    """What an answer of ``status`` means: 2xx allows, 5xx is the service failing (as no
    answer is: ``failure_mode`` decides), anything else denies."""
    if 200 <= status < 300:
        return "allowed"
    if status >= 500:
        return "error"
    return "denied"


def denial_status(status: int, has_location: bool) -> int:
    """The status a client gets for a denial the service answered with ``status``: 401
    and 403 as they are, a redirect (301, 302, 303, 307, 308) with a ``Location`` as it
    is (a login page), anything else 403."""
    if status in (401, 403) or (status in REDIRECTS and has_location):
        return status
    return 403


def passes_through(
    content_type: str | None, body: bytes | None, content_encoding: str | None = None
) -> bool:
    """Whether a denial's own body goes to the client instead of meshgate's problem: a
    JSON body (``application/json``, ``application/problem+json`` or ``+json``), whole,
    not empty and not encoded (gzip: its ``Content-Encoding`` is not passed on).
    Anything else (an HTML login page, text) is replaced: the edge's refusals are JSON
    problems."""
    if not body or content_type is None:
        return False
    if content_encoding is not None and content_encoding.strip().lower() != "identity":
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def client_headers(
    settings: CheckSettings, answer: CIMultiDictProxy[str] | CIMultiDict[str]
) -> CIMultiDict[str]:
    """The headers of a denying ``answer`` that go to the client (every value of each)."""
    names = settings.client_names
    return CIMultiDict((name, value) for name, value in answer.items() if name.lower() in names)


def take_upstream_headers(
    settings: CheckSettings,
    upstream: CIMultiDict[str],
    answer: CIMultiDictProxy[str] | CIMultiDict[str],
) -> None:
    """Set the ``allowed_upstream_headers`` of an allowing ``answer`` on ``upstream`` (the
    request as it goes on), every value of each, replacing any there."""
    for name in settings.upstream_names:
        values = answer.getall(name, ())
        if values:
            upstream.popall(name, None)
            for value in values:
                upstream.add(name, value)


def drop_client_copies(settings: CheckSettings, upstream: CIMultiDict[str]) -> None:
    """Remove the client's copies of the ``allowed_upstream_headers`` names from what goes
    on, in any case and ``_`` spelling (as the identity headers are), so that the service
    can trust them to be the authorization service's (on every request, checked or not)."""
    if settings.upstream_keys:
        remove_managed(upstream, settings.upstream_keys)
