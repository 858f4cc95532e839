"""The degraded-mode state machine (edge/ratelimit/health.py)."""

from __future__ import annotations

from edge.ratelimit.health import RedisHealth


def test_transitions_and_status() -> None:
    changes: list[tuple[bool, str | None]] = []
    health = RedisHealth(on_change=lambda ok, why: changes.append((ok, why)))
    assert health.healthy and health.status().outages == 0
    assert health.recovered() is False
    assert health.failed(10.0, "timeout") is True
    assert health.failed(11.0, "connection") is False  # already degraded: no new outage
    status = health.status()
    assert not status.healthy
    assert status.degraded_since == 10.0
    assert status.last_error == "connection"
    assert status.outages == 1
    assert health.recovered() is True
    assert health.status().healthy and health.status().last_error == "connection"
    assert health.failed(20.0, "x") is True
    assert health.status().outages == 2
    assert changes == [(False, "timeout"), (True, None), (False, "x")]
