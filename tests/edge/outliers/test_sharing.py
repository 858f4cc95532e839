"""``POST /outliers/ejections`` (edge/outliers/sharing.py) on a real admin listener: an
ejection for the seconds given, bad bodies refused with a problem, 409 with detection off."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from edge.outliers.sharing import PATH, EjectionSharing
from mesh.admin import build_admin_app
from mesh.admin_workers import AdminWorkers
from mesh.resilience.breaker import BreakerSettings
from mesh.resilience.outliers import OutlierDetector
from mesh.server import Listener


async def post(detector: OutlierDetector | None, body: Any) -> tuple[int, dict[str, Any]]:
    sharing = EjectionSharing(AdminWorkers(None), lambda: detector)
    app = build_admin_app(
        ready=lambda: (True, {}),
        views={},
        registry=CollectorRegistry(),
        endpoints={("POST", PATH): sharing.handle},
    )
    listener = Listener("admin", app, "127.0.0.1", 0, shutdown_timeout=0.2)
    await listener.start()
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{listener.port}{PATH}", data=data) as resp,
        ):
            return resp.status, await resp.json(content_type=None)
    finally:
        await listener.stop()


def detector() -> OutlierDetector:
    return OutlierDetector(BreakerSettings(), 0.5)


async def test_an_ejection_asked_for_is_applied_for_its_seconds_at_most_300() -> None:
    found = detector()
    status, body = await post(found, {"service": "users", "instance": "users-2", "seconds": 900})
    assert (status, body) == (200, {"service": "users", "instance": "users-2", "seconds": 300.0})
    assert found.ejected_count("users") == 1
    assert 299 < found.view()["users"]["ejected_when_told"]["users-2"] <= 300


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{", "the body is not JSON"),
        ({"service": "users", "instance": "u"}, 'give {"service": ..., "instance": ...'),
        ({"service": "", "instance": "u", "seconds": 1}, "service: a service's name"),
        ({"service": "users", "instance": 7, "seconds": 1}, "instance: an instance id"),
        ({"service": "users", "instance": "u", "seconds": 0}, "seconds: a number above 0"),
        ({"service": "users", "instance": "u", "seconds": True}, "seconds: a number above 0"),
    ],
)
async def test_a_bad_body_is_refused_and_ejects_nothing(body: Any, detail: str) -> None:
    found = detector()
    status, problem = await post(found, body)
    assert status == 400 and problem["detail"].startswith(detail)
    assert problem["type"].endswith("/bad-ejection")
    assert found.ejected_count("users") == 0


async def test_with_detection_off_an_ejection_is_a_conflict() -> None:
    status, problem = await post(None, {"service": "users", "instance": "u", "seconds": 5})
    assert status == 409 and problem["type"].endswith("/outlier-detection-off")
