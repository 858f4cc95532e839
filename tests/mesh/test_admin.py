"""What /readyz reports (mesh/admin.py: readiness)."""

from __future__ import annotations

from mesh.admin import readiness


def test_ready_only_when_every_condition_holds_and_not_draining() -> None:
    assert readiness(catalog=True, listening=True, draining=False) == (
        True,
        {"catalog": True, "listening": True, "draining": False},
    )
    # The catalog is in but the port is not open yet: traffic must not come.
    ok, body = readiness(catalog=True, listening=False, draining=False)
    assert not ok and body["listening"] is False
    ok, body = readiness(catalog=True, listening=True, registered=False, draining=False)
    assert not ok and body["registered"] is False
    ok, body = readiness(catalog=True, listening=True, draining=True)
    assert not ok and body["draining"] is True
