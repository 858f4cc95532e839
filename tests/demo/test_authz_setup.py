"""The demo edge's external authorization: its section loads, one route is checked."""

from __future__ import annotations

from pathlib import Path

from demo.auth_setup import DemoAuth
from demo.ratelimit_setup import edge_rate_limits
from demo.runner import edge_config
from edge.config import EdgeConfig
from edge.gateway import config_routes


def test_the_demo_edge_checks_its_admin_route_only(tmp_path: Path) -> None:
    redis = "redis://127.0.0.1:6379/0"
    auth = DemoAuth.prepare(tmp_path).edge_auth(redis)
    tree = edge_config("127.0.0.1:8500", 8080, 9901, auth, edge_rate_limits(redis))
    config = EdgeConfig.model_validate(tree)
    section = config.ext_authz
    assert section is not None and section.service == "authz"
    assert section.path_prefix == "/authz/check" and not section.check_by_default
    checked = {r.prefix: r.ext_authz for r in config_routes(config)}
    assert [prefix for prefix, own in checked.items() if own is not None] == ["/api/admin"]
    admin = checked["/api/admin"]
    assert admin is not None and not admin.disabled
    assert admin.describe()["context"] == {"resource": "admin"}
