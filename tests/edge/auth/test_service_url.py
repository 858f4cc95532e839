"""Auth service endpoints found in the catalog snapshot."""

from __future__ import annotations

import pytest

from edge.auth.service_url import NoHealthyInstance, ServiceUrl
from mesh.snapshot import Instance, ServiceEntry, Snapshot, make_snapshot


def snapshot(*instances: Instance) -> Snapshot:
    return make_snapshot({"auth": ServiceEntry("auth", instances)}, "test")


async def test_round_robin_over_healthy_instances() -> None:
    snap = snapshot(
        Instance("a1", "auth", "10.0.0.1", 15000),
        Instance("a2", "auth", "10.0.0.2", 15000, healthy=False),
        Instance("a3", "auth", "::1", 15000),
    )
    url = ServiceUrl(lambda: snap, "auth", "/.well-known/jwks.json")
    assert [await url() for _ in range(3)] == [
        "http://10.0.0.1:15000/.well-known/jwks.json",
        "http://[::1]:15000/.well-known/jwks.json",
        "http://10.0.0.1:15000/.well-known/jwks.json",
    ]


async def test_no_healthy_instance() -> None:
    for snap in (snapshot(), snapshot(Instance("a", "auth", "h", 1, healthy=False)), Snapshot()):
        with pytest.raises(NoHealthyInstance, match="auth"):
            await ServiceUrl(lambda s=snap: s, "auth", "/x")()
