"""The proxy's attempt loops when the request's deadline has passed before a call: 504,
no call, and the instance breaker's permit given back (mesh/proxy.py)."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from mesh.balancing import Balancer
from mesh.exchange import Exchange
from mesh.proxy import Proxy, ProxySettings
from mesh.resilience.breaker import BreakerSettings, BreakerState
from mesh.resilience.outcome import CallOutcome
from mesh.resilience.outliers import OutlierDetector
from mesh.resilience.retry_budget import RetryBudget, RetryBudgetSettings
from mesh.resilience.route_retries import CONNECT_FAILURE, RouteRetryPolicy
from mesh.snapshot import EMPTY, Instance
from mesh.transport.base import UpstreamRequest, UpstreamResponse

SETTINGS = BreakerSettings(consecutive_failures=1, open_base_s=5, open_jitter=0, half_open_trials=1)
INSTANCE = Instance(id="users-1", service="users", address="127.0.0.1", port=9)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class NeverCalled:
    """A transport the test must not reach: the deadline has passed before any call."""

    async def send(
        self, address: str, port: int, request: UpstreamRequest, tls: object = None
    ) -> UpstreamResponse:
        raise AssertionError("no call may be made once the deadline has passed")


def half_open_detector() -> tuple[OutlierDetector, Clock]:
    """A detector whose one instance's breaker is half-open with one trial slot."""
    clock = Clock()
    outliers = OutlierDetector(SETTINGS, 1.0, clock=clock, random_unit=lambda: 0.0)
    breaker, permit = outliers.admit("users", INSTANCE.id)
    assert permit is not None
    breaker.record(permit, CallOutcome.response(500))  # opens it
    clock.now += 5  # its open time is over: the next admission is its trial
    return outliers, clock


def late_exchange(retries: RouteRetryPolicy | None) -> Exchange:
    ex = Exchange(
        request=make_mocked_request("GET", "/users/1"),
        path="/users/1",
        query="",
        request_id="rid-12345678",
        client_ip="127.0.0.1",
        upstream_headers=CIMultiDict(),
    )
    ex.service = "users"
    # Its deadline (started + timeout) passed before the proxy got it.
    ex.started = time.monotonic() - 2.0
    ex.timeout = 1.0
    ex.retries = retries
    return ex


def retry_policy() -> RouteRetryPolicy:
    return RouteRetryPolicy(
        max_attempts=3,
        conditions=frozenset({CONNECT_FAILURE}),
        statuses=frozenset(),
        per_try_timeout=None,
        backoff_base=0.0,
        backoff_max=0.0,
        replay_limit=0,
        budget=RetryBudget(RetryBudgetSettings(), clock=time.monotonic),
    )


@pytest.mark.parametrize("retries", [None, retry_policy()], ids=["one-loop", "route-retries"])
async def test_a_passed_deadline_gives_the_trial_permit_back(
    retries: RouteRetryPolicy | None,
) -> None:
    outliers, _ = half_open_detector()
    proxy = Proxy(NeverCalled(), lambda: EMPTY, Balancer("round_robin"), ProxySettings())

    for _ in range(3):  # more requests than the breaker has trial slots
        response = await proxy.forward(late_exchange(retries), (INSTANCE,), outliers)
        assert response.status == 504

    # Every late request's permit came back: the trial slot is free for a real call.
    breaker, permit = outliers.admit("users", INSTANCE.id)
    assert breaker.state is BreakerState.HALF_OPEN
    assert permit is not None
