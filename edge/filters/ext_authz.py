"""After authentication, before rate limits: ask the authorization service about the
request (:mod:`edge.ext_authz`), and let it through, refuse it, or apply ``failure_mode``.

On every request (checked or not) the client's copies of ``allowed_upstream_headers``
are removed from what goes on. A route that is not checked costs an attribute test and
a counter more; a checked one, the check's round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from opentelemetry.util.types import AttributeValue

from edge.auth.identity import Identity, IdentityHeaders
from edge.ext_authz.client import Answer, AuthzClient, CheckFailed, Destination
from edge.ext_authz.metrics import ExtAuthzMetrics
from edge.ext_authz.policy import (
    FAILED_OPEN,
    MARKER,
    CheckSettings,
    RouteCheck,
    check_headers,
    check_target,
    client_headers,
    denial_status,
    drop_client_copies,
    passes_through,
    take_upstream_headers,
    verdict,
)
from edge.filters.identity_token import SIGNED_TOKEN_ATTR, sign_identity
from edge.object_memo import ObjectMemo
from mesh.chain import Handler
from mesh.exchange import Exchange
from mesh.identity.token import IdentitySigner
from mesh.proxy import client_body_problem, read_body_whole
from mesh.telemetry.tracing import (
    EVENT_EXT_AUTHZ_FAILED_OPEN,
    EVENT_EXT_AUTHZ_REFUSED,
    KNOWN_METHODS,
    add_event,
    end_client,
    side_call,
)
from mesh.transport.base import ClientBodyError, RequestBodyTooLarge

log = logging.getLogger("meshgate.edge.ext_authz")

RETRY_AFTER_S: Final = 5
"""``Retry-After`` of a 503 refusal when the service could not be asked."""
_SPAN_NAME: Final = "ext_authz"
_TITLES = {401: "Unauthorized", 403: "Forbidden"}

Pairs = tuple[tuple[str, str], ...]


class CheckHealth:
    """Whether the checks are failing now, logged once per change (not per request)."""

    def __init__(self) -> None:
        self.failing = False
        self.last_error: str | None = None

    def answered(self) -> None:
        if self.failing:
            self.failing = False
            log.info("external authorization answers again")

    def failed(self, detail: str) -> None:
        self.last_error = detail
        if not self.failing:
            self.failing = True
            log.warning("external authorization check failed: %s", detail)


class ExtAuthzFilter:
    """See the module docstring; ``route.ext_authz`` (its own setting) and ``settings``
    decide whether a request is checked."""

    def __init__(
        self,
        settings: CheckSettings,
        client: AuthzClient,
        metrics: ExtAuthzMetrics,
        identity_headers: IdentityHeaders,
        health: CheckHealth,
        *,
        body_timeout: float | None,
        signer: IdentitySigner | None = None,
        token_header: str = "X-Mesh-Identity",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``signer`` (the edge's identity token, when on) signs the token a check of an
        authenticated caller carries with its identity headers, in ``token_header``."""
        self._settings = settings
        self._signer = signer
        self._token_header = token_header
        self._client = client
        self._metrics = metrics
        self._health = health
        self._body_timeout = body_timeout
        self._clock = clock
        # The identities of cached callers are the same objects: rendered once each.
        self._identity: ObjectMemo[Identity, Pairs] = ObjectMemo(identity_headers.render)

    def __call__(self, ex: Exchange, next_handler: Handler) -> Awaitable[web.StreamResponse]:
        route = ex.attrs["route"]  # set by routing before any filter of this stage
        own: RouteCheck | None = route.ext_authz
        settings = self._settings
        if settings.checks(own):
            return self._check(ex, next_handler, route.name, own)
        drop_client_copies(settings, ex.upstream_headers)
        self._metrics.count(route.name, "skipped")
        return next_handler(ex)

    async def _check(
        self, ex: Exchange, next_handler: Handler, route: str, own: RouteCheck | None
    ) -> web.StreamResponse:
        settings = self._settings
        body: bytes | None = None
        content_type: str | None = None
        if settings.body_max is not None and ex.request.body_exists:
            try:
                body = await self._read_body(ex, settings.body_max)
            except ClientBodyError as exc:
                return client_body_problem(ex, exc)
            content_type = ex.request.headers.get("Content-Type")
        answer = await self._ask(ex, own, body, content_type)
        # After the check's headers were chosen: a name may be in both lists.
        drop_client_copies(settings, ex.upstream_headers)
        if isinstance(answer, CheckFailed):
            return await self._failed(ex, next_handler, route, answer)
        self._health.answered()
        if verdict(answer.status) == "allowed":
            take_upstream_headers(settings, ex.upstream_headers, answer.headers)
            self._metrics.count(route, "allowed")
            return await next_handler(ex)
        self._metrics.count(route, "denied")
        attributes: dict[str, AttributeValue] = {
            "meshgate.ext_authz.result": "denied",
            "meshgate.ext_authz.status": answer.status,
        }
        add_event(ex, EVENT_EXT_AUTHZ_REFUSED, attributes)
        return self._denial(ex, answer)

    async def _ask(
        self, ex: Exchange, own: RouteCheck | None, body: bytes | None, content_type: str | None
    ) -> Answer | CheckFailed:
        """Send the check of ``ex`` as its CLIENT span, timed: an allowing or denying
        answer, or why there is none usable (a 5xx is the service failing)."""
        settings = self._settings
        span = None
        started = self._clock()
        try:
            destination = self._client.pick()
            span, trace = side_call(ex, _SPAN_NAME, _span_attributes(ex, settings, destination))
            if span is not None:
                span.set_attribute("meshgate.ext_authz", True)
            headers = check_headers(
                settings,
                method=ex.method,
                uri=check_target("", ex.path, ex.query),
                upstream=ex.upstream_headers,
                client=ex.request.headers,
                identity=self._identity_of(ex),
                context=() if own is None else own.context,
                trace=trace,
                content_type=content_type,
            )
            target = check_target(settings.path_prefix, ex.path, ex.query)
            answer = await self._client.send(
                destination, ex.method, target, headers, body, settings.timeout
            )
        except CheckFailed as exc:
            end_client(span, None, exc.reason)
            self._metrics.observe("error", self._clock() - started)
            return exc
        except BaseException:  # cancelled (the client went away): the span still ends
            end_client(span, None, "aborted")
            raise
        end_client(span, answer.status, None)
        result = verdict(answer.status)
        self._metrics.observe(result, self._clock() - started)
        if result == "error":
            return CheckFailed("server_error", f"{destination.name} answered {answer.status}")
        return answer

    async def _failed(
        self, ex: Exchange, next_handler: Handler, route: str, failure: CheckFailed
    ) -> web.StreamResponse:
        """No usable answer: ``failure_mode`` decides."""
        self._health.failed(str(failure))
        if self._settings.allow_on_error:
            self._metrics.count(route, "failed_open")
            add_event(
                ex, EVENT_EXT_AUTHZ_FAILED_OPEN, {"meshgate.ext_authz.reason": failure.reason}
            )
            ex.upstream_headers[MARKER] = FAILED_OPEN
            return await next_handler(ex)
        self._metrics.count(route, "error")
        attributes: dict[str, AttributeValue] = {
            "meshgate.ext_authz.result": "error",
            "meshgate.ext_authz.reason": failure.reason,
        }
        add_event(ex, EVENT_EXT_AUTHZ_REFUSED, attributes)
        return self._unavailable(ex, self._settings.status_on_error)

    def _identity_of(self, ex: Exchange) -> Pairs:
        """The verified caller's identity headers, and the edge's identity token over them
        when it signs one (so that an authorization service behind a sidecar requiring
        it sees them); () for an anonymous caller. The token is left for the identity
        token filter, which sends it on rather than signing again."""
        identity: Identity | None = ex.attrs.get("identity")
        if identity is None:
            return ()
        pairs = self._identity(identity)
        signer = self._signer
        if signer is None:
            return pairs
        token = sign_identity(signer, ex, identity, pairs)
        ex.attrs[SIGNED_TOKEN_ATTR] = (pairs, token)
        return (*pairs, (self._token_header, token))

    async def _read_body(self, ex: Exchange, max_bytes: int) -> bytes:
        """The request body, read whole (within the listener's ``body_timeout``, and at
        most ``max_bytes`` and the route's ``max_body_size``) and kept in ``ex.body`` for
        the proxy to send; RequestBodyTooLarge at once when its declared length says so."""
        declared = ex.request.content_length
        if declared is not None and declared > max_bytes:
            raise RequestBodyTooLarge(
                f"the request body ({declared} bytes) is longer than the {max_bytes} bytes "
                "the authorization check takes"
            )
        return await read_body_whole(ex, self._body_timeout, max_bytes)

    def _denial(self, ex: Exchange, answer: Answer) -> web.Response:
        """The client's answer to a denial: the service's status as :func:`denial_status`
        maps it, its allowed client headers, its JSON body or meshgate's problem."""
        status = denial_status(answer.status, "Location" in answer.headers)
        headers = client_headers(self._settings, answer.headers)
        content_type = answer.headers.get("Content-Type")
        if passes_through(content_type, answer.body, answer.headers.get("Content-Encoding")):
            assert content_type is not None and answer.body is not None
            headers["Content-Type"] = content_type
            return web.Response(status=status, body=answer.body, headers=headers)
        if 300 <= status < 400:
            title, detail = "Redirected", "the authorization service sends the request elsewhere"
        else:
            title = _TITLES.get(status, "Forbidden")
            detail = "the authorization service refused the request"
        return ex.problem(
            status,
            title,
            detail,
            slug="ext-authz-denied",
            extra={"authz_status": answer.status},
            headers=headers,
        )

    @staticmethod
    def _unavailable(ex: Exchange, status: int) -> web.Response:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return ex.problem(
            status,
            "Authorization unavailable",
            "the authorization service could not decide on the request; try again shortly",
            slug="ext-authz-unavailable",
            headers=headers,
        )


def _span_attributes(
    ex: Exchange, settings: CheckSettings, destination: Destination
) -> dict[str, AttributeValue]:
    """The check's CLIENT span's attributes (values ``str`` or ``int``: see side_call)."""
    method = ex.method
    return {
        "http.request.method": method if method in KNOWN_METHODS else "_OTHER",
        "server.address": destination.host,
        "server.port": destination.port,
        "url.full": f"{destination.scheme}://{destination.authority}{settings.path_prefix}{ex.path}",
        "meshgate.instance": destination.name,
    }
