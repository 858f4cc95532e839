"""Applying faults to an exchange: the delay on an injected clock, bounded by the deadline,
the abort's problem answer, the markers, the metrics and the cap."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from mesh.exchange import Exchange
from mesh.faults.config import FaultConfig
from mesh.faults.injection import FAULT_HEADER, FaultInjection
from mesh.faults.metrics import FaultMetrics
from mesh.faults.policy import ABORT_HEADER, DELAY_HEADER, FaultPolicy
from mesh.telemetry.tracing import EVENT_FAULT_INJECTED
from tests.mesh.faults.support import Clock
from tests.mesh.telemetry.support import Recorder, make_exchange


class Upstream:
    """The next handler: records when it was called and answers 200."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.called_at: list[float] = []
        self.headers: list[CIMultiDict[str]] = []

    async def __call__(self, ex: Exchange) -> web.StreamResponse:
        self.called_at.append(self.clock())
        self.headers.append(CIMultiDict(ex.upstream_headers))
        return web.Response(text="ok")


def exchange(clock: Clock, timeout: float | None = None, headers: Any = None) -> Exchange:
    request = make_mocked_request("GET", "/stock/7", headers=headers or {})
    ex = Exchange(
        request=request,
        path="/stock/7",
        query="",
        request_id="rid-1",
        client_ip="127.0.0.1",
        upstream_headers=CIMultiDict(request.headers),
        started=clock(),
        service="inventory",
        route="outbound:inventory",
        timeout=timeout,
    )
    ex.trace_id = "0af7651916cd43dd8448eb211c80319c"
    return ex


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def setup(registry: CollectorRegistry, **block: Any) -> tuple[Clock, FaultInjection, FaultPolicy]:
    clock = Clock()
    injection = FaultInjection(FaultMetrics(registry), clock=clock, sleep=clock.sleep)
    return clock, injection, FaultPolicy(FaultConfig.model_validate(block), lambda: 0.0)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    labels = {"service": "inventory", "route": "outbound:inventory", **labels}
    return registry.get_sample_value(name, labels)


async def test_an_abort_answers_a_problem_and_never_calls_the_service(
    registry: CollectorRegistry,
) -> None:
    clock, injection, policy = setup(registry, abort={"status": 503})
    upstream = Upstream(clock)
    ex = exchange(clock)
    response = await injection.apply(ex, policy, upstream)
    assert isinstance(response, web.Response)
    assert response.status == 503 and upstream.called_at == []
    assert response.content_type == "application/problem+json"
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body["type"] == "https://meshgate.dev/problems/fault-injected"
    assert body["status"] == 503 and body["service"] == "inventory" and body["fault"] == "abort"
    assert body["request_id"] == "rid-1"
    assert body["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (FAULT_HEADER, "abort") in ex.response_headers
    assert sample(registry, "meshgate_faults_injected_total", kind="abort") == 1
    assert sample(registry, "meshgate_faults_injected_total", kind="delay") is None
    assert sample(registry, "meshgate_faults_active") == 0
    assert policy.active == 0


async def test_a_delay_holds_the_request_then_lets_it_go_on(registry: CollectorRegistry) -> None:
    clock, injection, policy = setup(registry, delay={"fixed": "2s"})
    upstream = Upstream(clock)
    ex = exchange(clock, timeout=5.0)
    response = await injection.apply(ex, policy, upstream)
    assert response.status == 200
    assert clock.slept == [2.0]
    assert upstream.called_at == [102.0]  # the service is called after the delay
    assert (FAULT_HEADER, "delay") in ex.response_headers
    assert sample(registry, "meshgate_faults_injected_total", kind="delay") == 1


async def test_a_delay_reaching_the_deadline_ends_at_it_with_504(
    registry: CollectorRegistry,
) -> None:
    clock, injection, policy = setup(registry, delay={"fixed": "10s"}, abort={"status": 500})
    upstream = Upstream(clock)
    ex = exchange(clock, timeout=3.0)
    clock.now += 1.0  # a second of the deadline already spent before the filter
    response = await injection.apply(ex, policy, upstream)
    assert response.status == 504
    assert clock.slept == [2.0]  # what was left, not the 10 s
    assert upstream.called_at == []
    assert isinstance(response, web.Response) and response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body["type"].endswith("/gateway-timeout")
    assert "injected delay of 10000 ms" in body["detail"]
    # The abort drawn too never came: the deadline answered first.
    assert sample(registry, "meshgate_faults_injected_total", kind="abort") is None
    assert (FAULT_HEADER, "delay") in ex.response_headers


async def test_a_delay_equal_to_what_is_left_is_late_too(registry: CollectorRegistry) -> None:
    clock, injection, policy = setup(registry, delay={"fixed": "3s"})
    upstream = Upstream(clock)
    response = await injection.apply(exchange(clock, timeout=3.0), policy, upstream)
    assert response.status == 504 and upstream.called_at == []


async def test_a_request_already_late_is_not_held(registry: CollectorRegistry) -> None:
    clock, injection, policy = setup(registry, delay={"fixed": "1s"})
    ex = exchange(clock, timeout=1.0)
    clock.now += 2.0
    response = await injection.apply(ex, policy, Upstream(clock))
    assert response.status == 504 and clock.slept == []


async def test_without_a_deadline_the_whole_delay_is_served(registry: CollectorRegistry) -> None:
    clock, injection, policy = setup(registry, delay={"fixed": "30s"})
    response = await injection.apply(exchange(clock), policy, Upstream(clock))
    assert response.status == 200 and clock.slept == [30.0]


async def test_delay_then_abort_marks_both(registry: CollectorRegistry) -> None:
    clock, injection, policy = setup(registry, delay={"fixed": "1s"}, abort={"status": 429})
    upstream = Upstream(clock)
    ex = exchange(clock, timeout=5.0)
    response = await injection.apply(ex, policy, upstream)
    assert response.status == 429 and clock.slept == [1.0] and upstream.called_at == []
    assert [h for h in ex.response_headers if h[0] == FAULT_HEADER] == [
        (FAULT_HEADER, "delay, abort")
    ]
    for kind in ("delay", "abort"):
        assert sample(registry, "meshgate_faults_injected_total", kind=kind) == 1


async def test_no_fault_drawn_leaves_the_request_alone(registry: CollectorRegistry) -> None:
    clock = Clock()
    injection = FaultInjection(FaultMetrics(registry), clock=clock, sleep=clock.sleep)
    policy = FaultPolicy(
        FaultConfig.model_validate({"abort": {"status": 503, "percent": 50}}), lambda: 0.5
    )
    upstream = Upstream(clock)
    ex = exchange(clock, headers={ABORT_HEADER: "500"})
    response = await injection.apply(ex, policy, upstream)
    assert response.status == 200 and len(upstream.called_at) == 1
    assert not any(name == FAULT_HEADER for name, _ in ex.response_headers)
    # headers: false: the control header is the app's business, passed on untouched.
    assert upstream.headers[0][ABORT_HEADER] == "500"


async def test_honoured_control_headers_are_not_sent_on(registry: CollectorRegistry) -> None:
    clock, injection, policy = setup(registry, headers=True)
    upstream = Upstream(clock)
    ex = exchange(clock, timeout=5.0, headers={DELAY_HEADER: "250", "X-Other": "1"})
    response = await injection.apply(ex, policy, upstream)
    assert response.status == 200 and clock.slept == [0.25]
    assert DELAY_HEADER not in upstream.headers[0] and upstream.headers[0]["X-Other"] == "1"


async def test_past_max_active_requests_go_on_untouched_and_count_as_overflow(
    registry: CollectorRegistry,
) -> None:
    gate = asyncio.Event()
    injection = FaultInjection(FaultMetrics(registry), sleep=lambda _: gate.wait())
    policy = FaultPolicy(
        FaultConfig.model_validate({"delay": {"fixed": "1s"}, "max_active": 2}), lambda: 0.0
    )
    clock = Clock()
    upstream = Upstream(clock)
    held = [
        asyncio.create_task(injection.apply(exchange(clock), policy, upstream)) for _ in range(2)
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    assert policy.active == 2 and sample(registry, "meshgate_faults_active") == 2
    response = await injection.apply(exchange(clock), policy, upstream)
    assert response.status == 200 and len(upstream.called_at) == 1  # not held
    assert sample(registry, "meshgate_faults_overflow_total") == 1
    gate.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
    assert policy.active == 0 and sample(registry, "meshgate_faults_active") == 0
    assert sample(registry, "meshgate_faults_injected_total", kind="delay") == 2


async def test_a_caller_gone_during_a_delay_frees_its_place(registry: CollectorRegistry) -> None:
    injection = FaultInjection(FaultMetrics(registry), sleep=lambda _: asyncio.Event().wait())
    policy = FaultPolicy(
        FaultConfig.model_validate({"delay": {"fixed": "1s"}, "max_active": 1}), lambda: 0.0
    )
    clock = Clock()
    task = asyncio.create_task(injection.apply(exchange(clock), policy, Upstream(clock)))
    await asyncio.sleep(0)
    assert policy.active == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert policy.active == 0 and sample(registry, "meshgate_faults_active") == 0


async def test_a_sampled_request_gets_one_span_event_per_fault(
    registry: CollectorRegistry,
) -> None:
    recorder = Recorder(sampler_ratio=1.0)
    ex = make_exchange()
    ex.service, ex.route = "orders", "orders:/api/orders"
    ex.trace = recorder.tracing.start_request(ex)
    clock, injection, policy = setup(registry, delay={"fixed": "50ms"}, abort={"status": 503})
    response = await injection.apply(ex, policy, Upstream(clock))
    ex.trace.end_server(ex, response.status, None, None)
    server = next(s for s in recorder.spans if s.kind is SpanKind.SERVER)
    assert [(e.name, dict(e.attributes or {})) for e in server.events] == [
        (EVENT_FAULT_INJECTED, {"meshgate.fault.kind": "delay", "meshgate.fault.delay_ms": 50}),
        (EVENT_FAULT_INJECTED, {"meshgate.fault.kind": "abort", "meshgate.fault.status": 503}),
    ]
