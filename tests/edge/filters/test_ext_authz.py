"""The external authorization filter with real sockets: a real authorization server (an
aiohttp app) asked through the real transport; every outcome answered and counted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer, make_mocked_request
from multidict import CIMultiDict
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from demo.processes import free_port
from edge.auth.config import DEFAULT_CLAIM_HEADERS
from edge.auth.identity import Identity, IdentityHeaders
from edge.ext_authz.client import TransportClient
from edge.ext_authz.metrics import ExtAuthzMetrics
from edge.ext_authz.policy import CheckSettings, RouteCheck
from edge.filters.ext_authz import CheckHealth, ExtAuthzFilter
from edge.filters.identity_headers import IdentityHeadersFilter
from edge.filters.identity_token import IdentityTokenFilter
from edge.routes import make_route
from mesh.exchange import Exchange
from mesh.identity.keys import generate_signing_key
from mesh.identity.token import (
    DEFAULT_ISSUER,
    IdentitySigner,
    verification_keys,
    verify_identity_token,
)
from mesh.snapshot import Instance, ServiceEntry, Snapshot
from mesh.telemetry.propagation import parse_traceparent
from mesh.telemetry.tracing import EVENT_EXT_AUTHZ_FAILED_OPEN, EVENT_EXT_AUTHZ_REFUSED
from mesh.transport.fast import FastTransport
from tests.mesh.telemetry.support import Recorder, make_exchange

ROUTE = "orders:/api/orders"


@dataclass
class Check:
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class AuthzServer:
    """Answers by the path it is asked about (after /check): see ``handle``."""

    checks: list[Check] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.checks.append(
            Check(
                request.method, request.path_qs, CIMultiDict(request.headers), await request.read()
            )
        )
        self.arrived.set()
        asked = request.path.removeprefix("/check")
        if asked.startswith("/api/orders/hang"):
            await self.release.wait()
        if asked.startswith("/api/orders/deny-json"):
            body = {"type": "about:blank", "title": "no orders for you", "status": 403}
            return web.json_response(
                body,
                status=403,
                content_type="application/problem+json",
                headers={
                    "WWW-Authenticate": 'Bearer error="insufficient_scope"',
                    "X-Internal": "1",
                },
            )
        if asked.startswith("/api/orders/deny-html"):
            return web.Response(
                status=401,
                text="<html>sign in</html>",
                content_type="text/html",
                headers={"WWW-Authenticate": 'Bearer realm="shop"'},
            )
        if asked.startswith("/api/orders/login"):
            response = web.Response(status=302, headers={"Location": "https://login.example/"})
            response.headers.add("Set-Cookie", "a=1")
            response.headers.add("Set-Cookie", "b=2")
            return response
        if asked.startswith("/api/orders/teapot"):
            return web.Response(status=418, text="short and stout")
        if asked.startswith("/api/orders/fail"):
            return web.Response(status=500, text="oops")
        return web.Response(
            status=200,
            text="ok",
            headers={"X-Tenant": "acme", "X-Debug": "not for the service"},
        )


@dataclass
class Rig:
    server: AuthzServer
    port: int
    transport: FastTransport
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    forwarded: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.metrics = ExtAuthzMetrics(self.registry)

    def filter(
        self,
        snapshot: Snapshot | None = None,
        signer: IdentitySigner | None = None,
        **changes: Any,
    ) -> ExtAuthzFilter:
        base: dict[str, Any] = {
            "path_prefix": "/check",
            "timeout": 2.0,
            "failure_mode": "deny",
            "status_on_error": 503,
            "check_by_default": True,
            "request_names": ["Authorization", "Cookie"],
            "fixed": {"X-Authz-Key": "k1"},
            "body_max": None,
            "upstream_names": ["X-Tenant"],
            "client_names": ["WWW-Authenticate", "Location", "Set-Cookie"],
        }
        base.update(changes)
        catalog = snapshot if snapshot is not None else with_authz(self.port)
        client = TransportClient(self.transport, service="authz", snapshot=lambda: catalog)
        return ExtAuthzFilter(
            CheckSettings.of(**base),
            client,
            self.metrics,
            IdentityHeaders(DEFAULT_CLAIM_HEADERS),
            CheckHealth(),
            body_timeout=5.0,
            signer=signer,
        )

    async def next_handler(self, ex: Exchange) -> web.StreamResponse:
        self.forwarded.append(ex)
        return web.Response(text="the service's answer")

    def count(self, result: str, route: str = ROUTE) -> float:
        labels = {"route": route, "result": result}
        return self.registry.get_sample_value("meshgate_ext_authz_requests_total", labels) or 0.0

    def timed(self, result: str) -> float:
        labels = {"result": result}
        value = self.registry.get_sample_value("meshgate_ext_authz_duration_seconds_count", labels)
        return value or 0.0


def with_authz(port: int) -> Snapshot:
    instance = Instance("authz-1", "authz", "127.0.0.1", port)
    return Snapshot(MappingProxyType({"authz": ServiceEntry("authz", (instance,))}))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    server = AuthzServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    transport = FastTransport(8)
    assert test_server.port is not None
    try:
        yield Rig(server, test_server.port, transport)
    finally:
        server.release.set()
        await transport.close()
        await test_server.close()


def routed(path: str = "/api/orders/7", own: RouteCheck | None = None, **headers: str) -> Exchange:
    """An exchange as routing leaves it (after authentication: credentials removed from
    what goes on), for the orders route with ``own`` as its ext_authz."""
    sent = {"Host": "shop.example:8080", **headers}
    ex = make_exchange(sent, path=path)
    ex.query = "x=1"
    ex.upstream_headers.popall("Authorization", None)
    ex.upstream_headers["X-Forwarded-For"] = "192.0.2.7"
    ex.upstream_headers["X-Forwarded-Proto"] = "http"
    ex.upstream_headers["X-Forwarded-Host"] = "shop.example:8080"
    ex.upstream_headers["X-Request-Id"] = ex.request_id
    route = make_route(prefix="/api/orders", service="orders", source="config", ext_authz=own)
    ex.attrs["route"] = route
    ex.route = route.name
    return ex


def problem(response: web.StreamResponse) -> dict[str, Any]:
    assert isinstance(response, web.Response) and response.body is not None
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = json.loads(response.body)  # type: ignore[arg-type]
    return body


ALICE = Identity(method="jwt", subject="alice", roles=("user", "admin"), email="alice@example.com")


async def test_an_allowed_request_goes_on_with_the_services_headers(rig: Rig) -> None:
    ex = routed(Authorization="Bearer t0k3n", Cookie="session=abc", **{"X-Tenant": "evil"})
    ex.attrs["identity"] = ALICE
    response = await rig.filter()(ex, rig.next_handler)
    assert isinstance(response, web.Response) and response.text == "the service's answer"
    assert rig.forwarded == [ex]
    # The authorization service's X-Tenant replaces the client's; its X-Debug is not listed.
    assert ex.upstream_headers.getall("X-Tenant") == ["acme"]
    assert "X-Debug" not in ex.upstream_headers
    [check] = rig.server.checks
    assert (check.method, check.path_qs, check.body) == ("GET", "/check/api/orders/7?x=1", b"")
    h = check.headers
    assert h["Host"] == f"127.0.0.1:{rig.port}"  # the service's own authority
    assert (h["X-Forwarded-Host"], h["X-Forwarded-For"], h["X-Forwarded-Proto"]) == (
        "shop.example:8080",
        "192.0.2.7",
        "http",
    )
    assert (h["X-Forwarded-Method"], h["X-Forwarded-Uri"]) == ("GET", "/api/orders/7?x=1")
    assert h["X-Request-Id"] == ex.request_id
    assert h["Authorization"] == "Bearer t0k3n"  # as the client sent it
    assert h["Cookie"] == "session=abc"
    assert h["X-Authz-Key"] == "k1"
    # The verified identity, as the service will get it.
    assert (h["X-User-Id"], h["X-User-Roles"], h["X-Auth-Method"]) == ("alice", "user,admin", "jwt")
    assert "X-Tenant" not in h  # not an allowed request header
    assert rig.count("allowed") == 1 and rig.timed("allowed") == 1


async def test_a_client_never_sends_identity_headers_to_the_check(rig: Rig) -> None:
    # The edge stripped the client's copies before routing; an anonymous caller has none.
    ex = routed(**{"X-User-Id": "mallory"})
    ex.upstream_headers.popall("X-User-Id")
    await rig.filter(request_names=["Authorization"])(ex, rig.next_handler)
    [check] = rig.server.checks
    assert "X-User-Id" not in check.headers


async def test_a_json_denial_passes_through_with_the_allowed_headers(rig: Rig) -> None:
    ex = routed("/api/orders/deny-json")
    response = await rig.filter()(ex, rig.next_handler)
    assert rig.forwarded == []  # the service never sees it
    assert isinstance(response, web.Response) and response.status == 403
    # The service's own type (aiohttp's json_response adds the charset).
    assert response.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    assert json.loads(response.body)["title"] == "no orders for you"  # type: ignore[arg-type]
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    assert "X-Internal" not in response.headers
    assert rig.count("denied") == 1 and rig.timed("denied") == 1


async def test_another_denial_is_a_problem_with_the_services_status(rig: Rig) -> None:
    ex = routed("/api/orders/deny-html")
    response = await rig.filter()(ex, rig.next_handler)
    body = problem(response)
    assert response.status == 401
    assert body["type"] == "https://meshgate.dev/problems/ext-authz-denied"
    assert (body["status"], body["authz_status"], body["request_id"]) == (401, 401, ex.request_id)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop"'


async def test_a_redirect_to_sign_in_passes_location_and_cookies(rig: Rig) -> None:
    response = await rig.filter()(routed("/api/orders/login"), rig.next_handler)
    assert response.status == 302
    assert response.headers["Location"] == "https://login.example/"
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert rig.forwarded == []


async def test_an_unusual_denial_is_a_403(rig: Rig) -> None:
    response = await rig.filter()(routed("/api/orders/teapot"), rig.next_handler)
    body = problem(response)
    assert (response.status, body["authz_status"]) == (403, 418)
    assert rig.count("denied") == 1


@pytest.mark.parametrize("status_on_error", [503, 403])
async def test_a_failing_service_refuses_with_status_on_error(
    rig: Rig, status_on_error: int
) -> None:
    ex = routed("/api/orders/fail")
    response = await rig.filter(status_on_error=status_on_error)(ex, rig.next_handler)
    body = problem(response)
    assert response.status == body["status"] == status_on_error
    assert body["type"] == "https://meshgate.dev/problems/ext-authz-unavailable"
    assert response.headers.get("Retry-After") == ("5" if status_on_error == 503 else None)
    assert rig.forwarded == []
    assert rig.count("error") == 1 and rig.timed("error") == 1


async def test_failure_mode_allow_lets_it_through_marked(rig: Rig) -> None:
    ex = routed("/api/orders/fail", **{"X-Tenant": "evil"})
    response = await rig.filter(failure_mode="allow")(ex, rig.next_handler)
    assert response.status == 200 and rig.forwarded == [ex]
    assert ex.upstream_headers["X-Meshgate-Ext-Authz"] == "failed-open"
    assert "X-Tenant" not in ex.upstream_headers  # the client's copy still goes
    assert rig.count("failed_open") == 1 and rig.count("error") == 0


async def test_a_hanging_service_times_out(rig: Rig) -> None:
    flt = rig.filter(timeout=0.2)
    response = await flt(routed("/api/orders/hang"), rig.next_handler)
    assert response.status == 503 and rig.count("error") == 1
    flt = rig.filter(timeout=0.2, failure_mode="allow")
    response = await flt(routed("/api/orders/hang"), rig.next_handler)
    assert response.status == 200 and rig.count("failed_open") == 1


async def test_no_instance_and_no_connection_are_errors(rig: Rig) -> None:
    response = await rig.filter(Snapshot())(routed(), rig.next_handler)
    assert response.status == 503
    closed = with_authz(free_port())  # nothing listens there
    response = await rig.filter(closed)(routed(), rig.next_handler)
    assert response.status == 503
    assert rig.count("error") == 2 and rig.server.checks == []


async def test_a_route_not_checked_goes_on_without_the_clients_copies(rig: Rig) -> None:
    ex = routed(own=RouteCheck(disabled=True), **{"X-Tenant": "evil", "x_tenant": "evil"})
    response = await rig.filter()(ex, rig.next_handler)
    assert response.status == 200 and rig.forwarded == [ex]
    assert rig.server.checks == []
    assert "X-Tenant" not in ex.upstream_headers and "x_tenant" not in ex.upstream_headers
    assert rig.count("skipped") == 1
    # Off by default: only a route asking for it is checked, with its context.
    flt = rig.filter(check_by_default=False)
    await flt(routed(), rig.next_handler)
    assert rig.server.checks == [] and rig.count("skipped") == 2
    own = RouteCheck(False, (("X-Ext-Authz-Context-resource", "orders"),))
    await flt(routed(own=own), rig.next_handler)
    [check] = rig.server.checks
    assert check.headers["X-Ext-Authz-Context-resource"] == "orders"


def with_body(ex: Exchange, body: bytes, declared: bool = True) -> Exchange:
    payload = StreamReader(BaseProtocol(asyncio.get_running_loop()), 2**16)
    payload.feed_data(body)
    payload.feed_eof()
    framing = {"Content-Length": str(len(body))} if declared else {"Transfer-Encoding": "chunked"}
    headers = {"Host": "shop.example:8080", "Content-Type": "application/json", **framing}
    ex.request = make_mocked_request("POST", ex.path, headers=headers, payload=payload)
    return ex


async def test_the_body_goes_to_the_check_only_when_asked(rig: Rig) -> None:
    body = b'{"item": 7}'
    await rig.filter()(with_body(routed(), body), rig.next_handler)
    await rig.filter(body_max=1024)(with_body(routed(), body), rig.next_handler)
    await rig.filter(body_max=1024)(with_body(routed(), body, declared=False), rig.next_handler)
    without, declared, chunked = rig.server.checks
    assert (without.method, without.body) == ("POST", b"")
    assert "Content-Type" not in without.headers
    for check in (declared, chunked):
        assert check.body == body
        assert check.headers["Content-Type"] == "application/json"
    # The proxy sends the body read for the check.
    assert [ex.body for ex in rig.forwarded] == [None, body, body]


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_over_the_checks_limit_is_refused(rig: Rig, declared: bool) -> None:
    ex = with_body(routed(), b"x" * 2048, declared)
    response = await rig.filter(body_max=1024)(ex, rig.next_handler)
    body = problem(response)
    assert (response.status, body["type"]) == (
        413,
        "https://meshgate.dev/problems/request-body-too-large",
    )
    assert rig.server.checks == [] and rig.forwarded == []


@pytest.fixture
def sampled() -> Iterator[Recorder]:
    yield Recorder(sampler_ratio=1.0)


async def test_the_check_is_a_client_span_of_the_requests_trace(
    rig: Rig, sampled: Recorder
) -> None:
    ex = routed("/api/orders/deny-json")
    trace = sampled.tracing.start_request(ex)
    await rig.filter()(ex, rig.next_handler)
    trace.end_server(ex, 403, None, None)
    [check] = rig.server.checks
    sent = parse_traceparent(check.headers["traceparent"])
    [span] = [s for s in sampled.spans if s.name == "ext_authz"]
    [server] = [s for s in sampled.spans if s.kind is SpanKind.SERVER]
    assert span.kind is SpanKind.CLIENT and span.parent is not None
    assert span.parent.span_id == server.context.span_id
    assert sent is not None and sent.sampled
    assert (sent.trace_id, sent.span_id) == (trace.trace_id, span.context.span_id)
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 403
    assert attributes["url.full"] == f"http://127.0.0.1:{rig.port}/check/api/orders/deny-json"
    assert attributes["meshgate.ext_authz"] is True
    assert [(e.name, dict(e.attributes or {})) for e in server.events] == [
        (
            EVENT_EXT_AUTHZ_REFUSED,
            {"meshgate.ext_authz.result": "denied", "meshgate.ext_authz.status": 403},
        )
    ]


async def test_a_failed_check_is_an_error_span_and_an_event(rig: Rig, sampled: Recorder) -> None:
    ex = routed()
    trace = sampled.tracing.start_request(ex)
    await rig.filter(Snapshot(), failure_mode="allow")(ex, rig.next_handler)
    trace.end_server(ex, 200, None, None)
    [server] = [s for s in sampled.spans if s.kind is SpanKind.SERVER]
    assert [(e.name, dict(e.attributes or {})) for e in server.events] == [
        (EVENT_EXT_AUTHZ_FAILED_OPEN, {"meshgate.ext_authz.reason": "no_instance"})
    ]
    # No instance: no destination, so no span of a call never made.
    assert [s for s in sampled.spans if s.name == "ext_authz"] == []
    ex = routed("/api/orders/fail")
    trace = sampled.tracing.start_request(ex)
    await rig.filter()(ex, rig.next_handler)
    [span] = [s for s in sampled.spans if s.name == "ext_authz"]
    assert dict(span.attributes or {})["error.type"] == "500"


async def test_the_check_carries_the_edges_identity_token_signed_once(rig: Rig) -> None:
    """An authorization service behind a sidecar requiring the edge's signature sees the
    identity; the request sent on carries the same token, not a second signature."""
    signer = IdentitySigner(generate_signing_key("ES256"))
    signatures = 0
    sign = signer.sign

    def counted(**kwargs: Any) -> str:
        nonlocal signatures
        signatures += 1
        return sign(**kwargs)

    signer.sign = counted  # type: ignore[method-assign]
    ex = routed()
    ex.attrs["identity"] = ALICE
    headers_filter = IdentityHeadersFilter(IdentityHeaders(DEFAULT_CLAIM_HEADERS))
    token_filter = IdentityTokenFilter(signer, "X-Mesh-Identity")

    async def then(ex: Exchange) -> web.StreamResponse:
        return await headers_filter(ex, lambda e: token_filter(e, rig.next_handler))

    await rig.filter(signer=signer)(ex, then)
    [check] = rig.server.checks
    token = check.headers["X-Mesh-Identity"]
    keys = verification_keys([signer.public_key])
    assertion = verify_identity_token(
        token, keys, issuer=DEFAULT_ISSUER, now=time.time(), leeway_s=0
    )
    assert (assertion.subject, assertion.request_id) == ("alice", ex.request_id)
    # It signs exactly the identity headers the check carries.
    assert ("X-User-Id", "alice") in assertion.headers
    assert all(check.headers[name] == value for name, value in assertion.headers)
    assert [e.upstream_headers["X-Mesh-Identity"] for e in rig.forwarded] == [token]
    assert signatures == 1
    # An anonymous caller's check carries no token.
    await rig.filter(signer=signer)(routed(), rig.next_handler)
    assert "X-Mesh-Identity" not in rig.server.checks[-1].headers


async def test_a_check_cut_short_by_the_client_going_still_ends_its_span(
    rig: Rig, sampled: Recorder
) -> None:
    ex = routed("/api/orders/hang")
    sampled.tracing.start_request(ex)
    task = asyncio.create_task(rig.filter()(ex, rig.next_handler))
    await asyncio.wait_for(rig.server.arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [span] = [s for s in sampled.spans if s.name == "ext_authz"]
    assert dict(span.attributes or {})["error.type"] == "aborted"
    assert rig.forwarded == []
