"""Sidecar resilience on real processes: breakers, retries, budgets, backpressure, deadlines."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.harness import App, Mesh, Sidecar, http, metrics

FAST_BREAKER = {
    "min_calls": 5,
    "window_size": 10,
    "consecutive_failures": None,
    "open_base": "1s",
    "open_max": "2s",
    "open_jitter": 0,
    "half_open_trials": 2,
}
NO_BREAKER = {
    "min_calls": 100,
    "window_size": 100,
    "failure_rate": 1.0,
    "consecutive_failures": None,
}


def resilience(breaker: dict[str, Any] | None = None, **retries: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {"breaker": breaker or FAST_BREAKER}
    if retries:
        policy["retries"] = retries
    return {"resilience": {"defaults": policy}}


def quick_retries(**retries: Any) -> dict[str, Any]:
    """No breaker in the way, three attempts, millisecond backoffs; ``retries`` on top."""
    return resilience(
        NO_BREAKER, **{"max_attempts": 3, "backoff_base": "1ms", "backoff_max": "5ms", **retries}
    )


def client(mesh: Mesh, extra: dict[str, Any]) -> Sidecar:
    """A sidecar for a caller that is not itself in the catalog (the test plays its app)."""
    app = mesh.app("client", "client-1")
    return mesh.sidecar(app, "client-1", extra={"registration": {"enabled": False}, **extra})


def backends(mesh: Mesh, n: int, extra: dict[str, Any] | None = None) -> list[tuple[App, Sidecar]]:
    out = []
    for i in range(n):
        app = mesh.app("backend", f"backend-{i}")
        out.append((app, mesh.sidecar(app, f"backend-{i}", extra=extra)))
    return out


async def wait_for_instances(session: aiohttp.ClientSession, sidecar: Sidecar, n: int) -> None:
    """Until the caller's sidecar sees ``n`` healthy backend instances."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with session.get(f"http://127.0.0.1:{sidecar.admin}/routes") as resp:
            data = await resp.json()
        healthy = [i for i in data["upstreams"].get("backend", []) if i["healthy"]]
        if len(healthy) == n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"caller never saw {n} healthy backends")


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any, Any]:
    async with session.get(url, **kw) as resp:
        return resp.status, resp.headers, await resp.json(content_type=None)


async def test_breaker_opens_fails_fast_probes_and_closes(mesh: Mesh) -> None:
    [(app, _)] = backends(mesh, 1)
    caller = client(mesh, resilience())
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    app.faults(error_rate=1.0, error_status=500)
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 1)
        for _ in range(5):
            tripping_call = time.monotonic()  # the fifth failure opens the breaker
            status, _, _ = await get(s, url)
            tripped = time.monotonic()  # ... at some moment between these two
            assert status == 500  # the app's own answer, passed on (not retried)
        reached = app.stats()["total"]
        assert reached == 5
        # Let the open time run down measurably: a retry_after_s that does not
        # count down (a constant 1.0) must fall outside the bounds below.
        await asyncio.sleep(0.2)
        # Open: calls fail fast and never reach the app.
        for _ in range(10):
            sent = time.monotonic()
            status, headers, body = await get(s, url)
            answered = time.monotonic()
            assert status == 503
            assert body["breaker"] == "open" and body["service"] == "backend"
            # First trip: open for open_base (1 s, no jitter) from the fifth failure,
            # so what is left is 1 s less the time since then (rounded to the ms),
            # bounded by the times the test saw on either side of both events.
            left = body["retry_after_s"]
            at_least = 1.0 - (answered - tripping_call) - 0.001
            at_most = 1.0 - (sent - tripped) + 0.001
            # The lower bound has teeth: the breaker still answered "open", so less
            # than its 1 s has passed since the trip and the bound is above zero. A
            # value that is too small fails it: 0 (no time left while open), or
            # retry_after() scaled by 0.7 (checked: 0.558 < 0.794).
            assert at_least > 0.0
            assert at_least <= left
            # The upper bound fails a value that does not count down (a constant 1.0).
            assert left <= at_most
            assert headers["Retry-After"] == "1"
        assert app.stats()["total"] == reached
        async with s.get(f"http://127.0.0.1:{caller.admin}/breakers") as resp:
            assert (await resp.json())["backend"]["state"] == "open"
        # After the open time a trial goes through (and fails: open again, longer).
        await asyncio.sleep(1.1)
        trial = time.monotonic()
        status, _, _ = await get(s, url)
        trial_failed = time.monotonic()
        assert status == 500
        assert app.stats()["total"] == reached + 1
        # Second consecutive trip: the open time doubles to 2 s (open_max), counted
        # from the failed trial; a 1 s, an uncapped or a constant open time falls outside.
        await asyncio.sleep(0.2)
        sent = time.monotonic()
        status, headers, body = await get(s, url)
        answered = time.monotonic()
        assert status == 503
        left = body["retry_after_s"]
        assert 2.0 - (answered - trial) - 0.001 <= left <= 2.0 - (sent - trial_failed) + 0.001
        assert headers["Retry-After"] == "2"
        # The upstream recovers; after the (doubled) open time, trials close it.
        app.faults(error_rate=0.0)
        deadline = time.monotonic() + 5
        while True:
            status, _, _ = await get(s, url)
            if status == 200:
                break
            assert time.monotonic() < deadline, "breaker never let a trial through"
            await asyncio.sleep(0.1)
        for _ in range(3):
            assert (await get(s, url))[0] == 200
        async with s.get(f"http://127.0.0.1:{caller.admin}/breakers") as resp:
            assert (await resp.json())["backend"]["state"] == "closed"


async def test_hanging_instance_is_retried_on_the_healthy_one_within_the_deadline(
    mesh: Mesh,
) -> None:
    (hung, _), _ = backends(mesh, 2)
    caller = client(mesh, resilience(NO_BREAKER, per_try_timeout="300ms"))
    hung.faults(hang=True)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        for _ in range(6):
            started = time.monotonic()
            status, headers, body = await get(s, url, headers={"X-Mesh-Deadline-Ms": "2000"})
            assert status == 200
            assert body["instance"] == "backend-1"
            assert time.monotonic() - started < 2.0
            assert int(headers["X-Mesh-Attempts"]) in (1, 2)


async def _stream(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    seconds: float,
    results: list[Any],
    seq_prefix: str,
) -> None:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        seq = f"{seq_prefix}-{n}"
        async with session.request(method, url, headers={"X-Test-Seq": seq}, data=b"x") as resp:
            results.append((seq, resp.status))
            await resp.read()


async def test_kill_9_of_one_instance_during_gets_loses_no_request(mesh: Mesh) -> None:
    (a_app, a_side), _ = backends(mesh, 2)
    caller = client(mesh, resilience(NO_BREAKER))
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/slow?ms=50"
    results: list[Any] = []
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        streams = [
            asyncio.create_task(_stream(s, url, "GET", 3.0, results, f"g{i}")) for i in range(8)
        ]
        await asyncio.sleep(1.0)
        a_side.process.kill()
        a_app.process.kill()
        await asyncio.gather(*streams)
    statuses = [status for _, status in results]
    assert len(statuses) > 50
    assert set(statuses) == {200}, [r for r in results if r[1] != 200]


async def test_kill_9_during_posts_never_sends_one_twice(mesh: Mesh) -> None:
    pairs = backends(mesh, 2)
    (a_app, a_side), (b_app, _) = pairs
    caller = client(mesh, resilience(NO_BREAKER))
    for app, _ in pairs:
        app.faults(latency_ms=50)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    results: list[Any] = []
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        streams = [
            asyncio.create_task(_stream(s, url, "POST", 3.0, results, f"p{i}")) for i in range(8)
        ]
        await asyncio.sleep(1.0)
        a_side.process.kill()  # the instance's endpoint dies; its app keeps its counts
        await asyncio.gather(*streams)
    counts: dict[str, int] = {}
    for app in (a_app, b_app):
        for seq, n in app.stats()["by_seq"].items():
            counts[seq] = counts.get(seq, 0) + n
    assert len(results) > 50
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
    for seq, status in results:
        if status == 200:
            assert counts.get(seq) == 1


async def test_a_failed_first_attempt_is_retried_once_and_never_sent_twice(mesh: Mesh) -> None:
    # The sidecar makes a call's first attempt itself and hands tenacity its outcome
    # when it may be retried: that attempt must count as tenacity's first, not be sent
    # again, and each retry must go to the other instance.
    (failing, _), (healthy, _) = backends(mesh, 2)
    caller = client(mesh, quick_retries(budget_ratio=1.0))
    failing.faults(error_rate=1.0, error_status=503)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    n = 30
    attempts: list[int] = []
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        for _ in range(n):
            status, headers, body = await get(s, url)
            assert status == 200
            assert body["instance"] == "backend-1"
            attempts.append(int(headers["X-Mesh-Attempts"]))
    assert set(attempts) <= {1, 2}, attempts
    retried = attempts.count(2)
    assert retried > 0, "no call's first attempt went to the failing instance"
    assert failing.stats()["total"] == retried
    assert healthy.stats()["total"] == n


async def test_a_call_to_failing_instances_makes_exactly_its_max_attempts(mesh: Mesh) -> None:
    # The first attempt, made before tenacity is involved, is tenacity's attempt 1:
    # a call makes max_attempts attempts in all, not one more.
    pairs = backends(mesh, 2)
    caller = client(mesh, quick_retries(budget_ratio=1.0))
    for app, _ in pairs:
        app.faults(error_rate=1.0, error_status=503)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    n = 10
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        for _ in range(n):
            status, headers, _ = await get(s, url)
            assert status == 503
            assert headers["X-Mesh-Attempts"] == "3"
    assert sum(app.stats()["total"] for app, _ in pairs) == 3 * n


async def test_when_every_instance_fails_attempts_stay_within_the_budget(mesh: Mesh) -> None:
    pairs = backends(mesh, 2)
    caller = client(mesh, quick_retries(budget_ratio=0.2, budget_min_per_second=0))
    for app, _ in pairs:
        app.faults(error_rate=1.0, error_status=503)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    n = 60
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        for _ in range(n):
            assert (await get(s, url))[0] == 503
        async with s.get(f"http://127.0.0.1:{caller.admin}/breakers") as resp:
            budget = (await resp.json())["backend"]["retry_budget"]
    attempts = sum(app.stats()["total"] for app, _ in pairs)
    assert n < attempts <= n + 0.2 * n + 1, attempts
    assert budget["exhausted_total"] > 0


async def test_backpressure_is_passed_back_and_the_instance_is_avoided(mesh: Mesh) -> None:
    (pushy, _), _ = backends(mesh, 2)
    caller = client(mesh, resilience())
    pushy.faults(error_rate=1.0, error_status=429, retry_after=2)
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        for _ in range(4):
            status, headers, _ = await get(s, url)
            if status == 429:
                refused_at = time.monotonic()
                break
        else:
            pytest.fail("the 429 instance was never picked")
        assert headers["Retry-After"] == "2"
        assert headers["X-Mesh-Attempts"] == "1"  # not retried at once
        hits = pushy.stats()["total"]
        while time.monotonic() - refused_at < 1.7:
            status, _, body = await get(s, url)
            assert status == 200 and body["instance"] == "backend-1"
        assert pushy.stats()["total"] == hits
        await asyncio.sleep(max(0.0, 2.2 - (time.monotonic() - refused_at)))
        seen = set()
        for _ in range(6):
            status, _, body = await get(s, url)
            seen.add(status)
        assert pushy.stats()["total"] > hits, "instance still avoided after Retry-After"
        async with s.get(f"http://127.0.0.1:{caller.admin}/breakers") as resp:
            view = (await resp.json())["backend"]
    assert view["state"] == "closed"
    assert all(i["state"] == "closed" for i in view["instances"].values())


async def test_expired_deadline_is_answered_504_without_calling_the_app(mesh: Mesh) -> None:
    [(app, side)] = backends(mesh, 1)
    async with aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{side.inbound}/backend/echo"
        status, _, body = await get(s, url, headers={"X-Mesh-Deadline-Ms": "0"})
        assert status == 504 and body["status"] == 504
        assert app.stats()["total"] == 0
        assert (await get(s, url, headers={"X-Mesh-Deadline-Ms": "5000"}))[0] == 200
        assert app.stats()["total"] == 1


async def test_three_hops_never_run_past_the_route_timeout(mesh: Mesh) -> None:
    orders = mesh.app("orders", "orders-1")
    mesh.sidecar(orders, "orders-1")
    inventory = mesh.app("inventory", "inventory-1")
    mesh.sidecar(inventory, "inventory-1")
    edge = mesh.edge(
        [
            {
                "prefix": "/api/orders",
                "service": "orders",
                "prefix_rewrite": "/orders",
                "timeout": "300ms",
            }
        ]
    )
    async with aiohttp.ClientSession() as s:
        status, _, body = await get(s, f"{edge.url}/api/orders/7")
        assert status == 200, body
        assert body["stock"]["item"] == "7"
        inventory.faults(latency_ms=2000)
        for _ in range(3):
            started = time.monotonic()
            status, _, body = await get(s, f"{edge.url}/api/orders/7")
            elapsed = time.monotonic() - started
            assert status == 504, body
            # Well under the 2 s the upstream would take, with room for a loaded machine.
            assert elapsed < 1.0, f"a 300 ms deadline took {elapsed * 1000:.0f} ms"


async def test_inbound_cap_sheds_the_excess_quickly(mesh: Mesh) -> None:
    app = mesh.app("backend", "backend-0")
    side = mesh.sidecar(
        app, "backend-0", extra={"inbound": {"limit": {"max_in_flight": 4, "max_queue": 0}}}
    )
    app.faults(latency_ms=1500)
    url = f"http://127.0.0.1:{side.inbound}/backend/echo"

    async def timed(s: aiohttp.ClientSession) -> tuple[int, float, str | None]:
        started = time.monotonic()
        async with s.get(url) as resp:
            await resp.read()
            return resp.status, time.monotonic() - started, resp.headers.get("Retry-After")

    async with aiohttp.ClientSession() as s:
        results = await asyncio.gather(*(timed(s) for _ in range(8)))
    ok = [r for r in results if r[0] == 200]
    shed = [r for r in results if r[0] == 503]
    assert len(ok) == 4 and len(shed) == 4, results
    # Shed at once, not after the 1.5 s the admitted ones wait (room for a loaded machine).
    assert all(elapsed < 0.75 for _, elapsed, _ in shed), shed
    assert all(retry_after == "1" for _, _, retry_after in shed)
    assert app.stats()["max_in_progress"] <= 4


async def _raw(port: int, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send ``data`` on a new connection; the answer's status and JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_a_callers_broken_body_is_its_400_and_never_the_services_failure(
    mesh: Mesh,
) -> None:
    """Malformed bodies from the app (a short Content-Length, replayable; broken chunked
    framing, streamed) get 400 problems; the backend's breaker counts none of them."""
    backends(mesh, 1)
    caller = client(mesh, resilience())
    path = b"/backend/backend/echo"
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 1)
        for _ in range(6):  # more than the breaker's min_calls
            short = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc" % path
            reader, writer = await asyncio.open_connection("127.0.0.1", caller.outbound)
            writer.write(short)
            writer.write_eof()  # the connection ends 7 bytes short
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            # The caller is gone by the time the sidecar could answer; if an answer made
            # it out, it is a 400 problem (never a 5xx).
            assert answer == b"" or answer.split()[1] == b"400", answer[:200]
            status, problem = await _raw(
                caller.outbound,
                b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n5\r\nhello\r\nzz\r\n" % path,
            )
            assert status == 400 and problem["type"].endswith("/bad-request"), problem
        status, _, body = await get(s, f"http://127.0.0.1:{caller.outbound}/backend/backend/echo")
        assert status == 200 and body["service"] == "backend"
        scraped = metrics(caller.admin)
    states = [
        v
        for labels, v in scraped.get("meshgate_breaker_state", [])
        if labels.get("service") == "backend"
    ]
    assert states and all(v == 0 for v in states), states  # closed: nothing counted
    opened = [
        v
        for labels, v in scraped.get("meshgate_breaker_transitions_total", [])
        if labels.get("service") == "backend"
    ]
    assert sum(opened) == 0


async def test_calls_over_a_services_max_requests_are_refused_before_its_breaker(
    mesh: Mesh,
) -> None:
    [(app, _)] = backends(mesh, 1)
    limited = {"defaults": {"breaker": FAST_BREAKER}, "services": {"backend": {"max_requests": 2}}}
    caller = client(mesh, {"resilience": limited})
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    app.faults(latency_ms=1500)
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 1)
        before = app.stats()["total"]
        answers = await asyncio.gather(*(get(s, url) for _ in range(5)))
        assert sorted(status for status, _, _ in answers) == [200, 200, 503, 503, 503]
        for status, headers, body in answers:
            if status == 503:
                assert body["type"].endswith("/upstream-overloaded")
                assert (body["service"], body["limit"]) == ("backend", 2)
                assert headers["Retry-After"] == "1"
        assert app.stats()["total"] == before + 2  # the refused calls never left the sidecar
        async with s.get(f"http://127.0.0.1:{caller.admin}/upstream-limits") as resp:
            view = await resp.json()
        assert view["services"]["backend"] == {"limit": 2, "active": 0, "overflows": 3}
        async with s.get(f"http://127.0.0.1:{caller.admin}/breakers") as resp:
            breaker = (await resp.json())["backend"]
        # No failure counted: a refusal is the caller's own bound, not the service failing.
        assert breaker["state"] == "closed" and breaker["window"]["failures"] == 0
    refused = metrics(caller.admin)["meshgate_upstream_overflow_total"]
    assert refused == [({"service": "backend"}, 3.0)]


# -- hedging (retries.hedge_on_per_try_timeout) -------------------------------------------

SLOW_S = 1.5
"""The slow instance's delay; a hedged call must answer well within it."""


def hedging(**retries: Any) -> dict[str, Any]:
    """Quick retries with a 200 ms per-try timeout, a generous budget, hedging on."""
    return quick_retries(
        **{
            "per_try_timeout": "200ms",
            "budget_ratio": 1.0,
            "hedge_on_per_try_timeout": True,
            **retries,
        }
    )


def counted(
    scraped: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_labels, value in scraped.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def breakers(sidecar: Sidecar) -> dict[str, Any]:
    """The sidecar's ``/breakers`` view."""
    view: dict[str, Any] = json.loads(http(f"http://127.0.0.1:{sidecar.admin}/breakers")[2])
    return view


async def _calls_to_slow_and_fast(
    mesh: Mesh,
    caller_extra: dict[str, Any],
    n: int = 8,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> tuple[App, App, Sidecar, list[tuple[str, int, Any, Any, float]]]:
    """Two backend instances, backend-0 slow (``SLOW_S``), backend-1 fast; ``n`` calls
    through a caller's sidecar with ``caller_extra``, one after another (round robin
    sends every other one to the slow instance first). Each call carries its own
    ``X-Test-Seq``; returns both apps, the caller, and (seq, status, headers, body,
    seconds) per call; ``headers`` go with each call too."""
    (slow, _), (fast, _) = backends(mesh, 2)
    caller = client(mesh, caller_extra)
    slow.faults(latency_ms=int(SLOW_S * 1000))
    url = f"http://127.0.0.1:{caller.outbound}/backend/backend/echo"
    calls = []
    async with aiohttp.ClientSession() as s:
        await wait_for_instances(s, caller, 2)
        for i in range(n):
            seq = f"{method.lower()}-{i}"
            started = time.monotonic()
            sent = {"X-Test-Seq": seq, **(headers or {})}
            async with s.request(method, url, headers=sent, **kw) as resp:
                body = await resp.json(content_type=None)
                calls.append((seq, resp.status, resp.headers, body, time.monotonic() - started))
    return slow, fast, caller, calls


async def test_a_slow_instance_is_hedged_and_the_fast_answer_wins(mesh: Mesh) -> None:
    slow, fast, caller, calls = await _calls_to_slow_and_fast(mesh, hedging())
    hedged = [seq for seq, _, headers, _, _ in calls if headers["X-Mesh-Attempts"] == "2"]
    assert hedged, "no call's first attempt went to the slow instance"
    for seq, status, headers, body, seconds in calls:
        assert status == 200 and body["instance"] == "backend-1", (seq, status, body)
        assert headers["X-Mesh-Attempts"] in ("1", "2")
        # The fast answer, not the slow one: well under the slow delay (a loaded
        # machine's margin; a hedged call takes the 200 ms per-try timeout and a bit).
        assert seconds < SLOW_S * 0.8, (seq, seconds)
    # Each app saw each request at most once: the slow one each hedged call's first
    # attempt, the fast one every call (its hedge, or its only attempt).
    assert slow.stats()["by_seq"] == {seq: 1 for seq in hedged}
    assert fast.stats()["by_seq"] == {seq: 1 for seq, *_ in calls}
    scraped = metrics(caller.admin)
    assert counted(scraped, "meshgate_hedges_total", service="backend", outcome="won") == len(
        hedged
    )
    assert counted(scraped, "meshgate_hedges_total", service="backend", outcome="lost") == 0
    # A hedge is a retry for the budget.
    assert counted(scraped, "meshgate_retries_total", service="backend") == len(hedged)
    # The slow attempts were cancelled when the hedge won, not timed out.
    timeouts = "meshgate_upstream_duration_seconds_count"
    assert counted(scraped, timeouts, service="backend", outcome="timeout") == 0
    # ... and their instance's breaker counted nothing for them: losing is no failure.
    slow_window = breakers(caller)["backend"]["instances"]["backend-0"]["window"]
    assert slow_window["failures"] == 0, slow_window


async def test_without_hedging_the_slow_attempt_is_abandoned_and_retried(mesh: Mesh) -> None:
    slow, fast, caller, calls = await _calls_to_slow_and_fast(
        mesh, quick_retries(per_try_timeout="200ms", budget_ratio=1.0)
    )
    retried = [seq for seq, _, headers, _, _ in calls if headers["X-Mesh-Attempts"] == "2"]
    assert retried, "no call's first attempt went to the slow instance"
    for seq, status, _, body, seconds in calls:
        assert status == 200 and body["instance"] == "backend-1", (seq, status, body)
        assert seconds < SLOW_S * 0.8, (seq, seconds)
    assert slow.stats()["by_seq"] == {seq: 1 for seq in retried}
    assert fast.stats()["by_seq"] == {seq: 1 for seq, *_ in calls}
    scraped = metrics(caller.admin)
    assert "meshgate_hedges_total" not in scraped
    # Each slow first attempt timed out at its per-try timeout, then was retried.
    timeouts = "meshgate_upstream_duration_seconds_count"
    assert counted(scraped, timeouts, service="backend", outcome="timeout") == len(retried)
    slow_window = breakers(caller)["backend"]["instances"]["backend-0"]["window"]
    assert slow_window["failures"] == len(retried), slow_window
    assert counted(scraped, "meshgate_retries_total", service="backend") == len(retried)


async def test_a_post_is_never_hedged(mesh: Mesh) -> None:
    slow, fast, caller, calls = await _calls_to_slow_and_fast(
        mesh, hedging(), method="POST", data=b"order"
    )
    timed_out = [seq for seq, status, *_ in calls if status == 504]
    assert timed_out, "no call's first attempt went to the slow instance"
    for seq, status, headers, body, _ in calls:
        # Sent once: answered by the fast instance, or 504 at the slow one's per-try
        # timeout (a POST that may have reached the app is neither hedged nor retried).
        assert headers["X-Mesh-Attempts"] == "1", (seq, status, body)
        assert status == 504 or (status == 200 and body["instance"] == "backend-1")
    counts: dict[str, int] = {}
    for app in (slow, fast):
        for seq, n in app.stats()["by_seq"].items():
            counts[seq] = counts.get(seq, 0) + n
    assert counts == {seq: 1 for seq, *_ in calls}
    assert slow.stats()["by_seq"] == {seq: 1 for seq in timed_out}
    scraped = metrics(caller.admin)
    assert counted(scraped, "meshgate_hedges_total", service="backend") == 0


async def test_with_the_budget_spent_the_first_attempt_runs_on_to_the_deadline(
    mesh: Mesh,
) -> None:
    # No retry in the budget: no hedge; and the slow first attempt is not abandoned at
    # its 200 ms per-try timeout either: it answers, within the call's 5 s deadline.
    slow, fast, caller, calls = await _calls_to_slow_and_fast(
        mesh,
        hedging(budget_ratio=0.0, budget_min_per_second=0.0),
        n=2,
        headers={"X-Mesh-Deadline-Ms": "5000"},
    )
    answered_by = sorted(body["instance"] for _, _, _, body, _ in calls)
    assert answered_by == ["backend-0", "backend-1"], calls
    for seq, status, headers, body, seconds in calls:
        assert status == 200 and headers["X-Mesh-Attempts"] == "1", (seq, status, body)
        if body["instance"] == "backend-0":
            assert seconds >= SLOW_S, seconds  # it waited for the slow answer
    # Each instance saw its one call once: nothing was sent again.
    assert sum(slow.stats()["by_seq"].values()) == sum(fast.stats()["by_seq"].values()) == 1
    scraped = metrics(caller.admin)
    assert counted(scraped, "meshgate_hedges_total", service="backend") == 0
    assert counted(scraped, "meshgate_retry_budget_exhausted_total", service="backend") == 1
