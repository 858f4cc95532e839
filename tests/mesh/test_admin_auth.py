"""Who may use the admin listener (mesh/admin_auth.py): the decision, table-driven, then a
real admin app on a TCP port (and a Unix socket, as an edge worker's) answering requests
with and without the token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from mesh.admin import build_admin_app, json_response
from mesh.admin_auth import AdminAuth, AdminPolicy
from mesh.admin_token import AdminToken
from mesh.config.sections import AdminConfig
from mesh.server import Listener

TOKEN = "3f9a1c0e5b7d2a4f6e8c0b1d3a5f7e9c"
OTHER = "0000000000000000000000000000000000"
POLICY = AdminPolicy(AdminToken("test", TOKEN.encode()), open_paths=frozenset({"/health/app"}))


@pytest.mark.parametrize(
    ("route", "authorization", "refusal"),
    [
        # The probes, /metrics and the owner's open paths: no token needed, any sent.
        ("/healthz", None, None),
        ("/readyz", None, None),
        ("/readyz", f"Bearer {OTHER}", None),
        ("/metrics", None, None),
        ("/health/app", None, None),
        # Everything else, unmatched requests (route None) included.
        ("/routes", None, "missing"),
        ("/cache/purge", None, "missing"),
        (None, None, "missing"),
        ("/routes", f"Basic {TOKEN}", "not_bearer"),
        ("/routes", TOKEN, "not_bearer"),
        ("/routes", "", "not_bearer"),
        ("/routes", f"Bearer {OTHER}", "wrong_token"),
        ("/routes", "Bearer", "wrong_token"),
        ("/routes", f"Bearer {TOKEN[:-1]}", "wrong_token"),
        ("/routes", f"Bearer {TOKEN}x", "wrong_token"),
        (None, f"Bearer {TOKEN}", None),
        ("/routes", f"Bearer {TOKEN}", None),
        # The scheme is case-insensitive (RFC 7235); extra spaces are not part of the token.
        ("/routes", f"bearer {TOKEN}", None),
        ("/routes", f"BEARER  {TOKEN} ", None),
    ],
)
def test_what_needs_the_token(route: str | None, authorization: str | None, refusal: str) -> None:
    assert POLICY.refusal(route, authorization, internal=False) == refusal


def test_metrics_need_it_when_protected() -> None:
    protected = AdminPolicy(POLICY.token, protect_metrics=True)
    assert protected.refusal("/metrics", None, internal=False) == "missing"
    assert protected.refusal("/metrics", f"Bearer {TOKEN}", internal=False) is None
    assert protected.refusal("/healthz", None, internal=False) is None


def test_without_a_token_everything_is_open_and_over_a_unix_socket_too() -> None:
    assert AdminPolicy().refusal("/cache/purge", None, internal=False) is None
    assert POLICY.refusal("/cache/purge", None, internal=True) is None


# -- a real admin listener ---------------------------------------------------------


class Admin:
    """An admin app with a view, a POST endpoint and an open path, guarded by ``auth``."""

    def __init__(self, auth: AdminAuth, registry: CollectorRegistry, unix_path: str) -> None:
        self.auth = auth
        self.registry = registry
        self.purged = 0

        async def purge(_: web.Request) -> web.Response:
            self.purged += 1
            return json_response({"purged": 1})

        async def app_health(_: web.Request) -> web.Response:
            return json_response({"app": "up"})

        app = build_admin_app(
            ready=lambda: (True, {}),
            views={"/routes": lambda: {"routes": []}},
            registry=registry,
            handlers={"/health/app": app_health},
            endpoints={("POST", "/cache/purge"): purge},
            auth=auth,
        )
        self.listener = Listener(
            "admin", app, "127.0.0.1", 0, shutdown_timeout=0.2, unix_path=unix_path
        )
        self.unix_path = unix_path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.listener.port}"

    def refusals(self) -> dict[str, float]:
        return {
            reason: self.registry.get_sample_value(
                "meshgate_admin_refusals_total", {"reason": reason}
            )
            or 0.0
            for reason in ("missing", "not_bearer", "wrong_token")
        }


def admin_config(tmp_path: Path, token: str = TOKEN, **settings: Any) -> AdminConfig:
    path = tmp_path / "admin-token"
    path.write_text(token + "\n")
    return AdminConfig.model_validate({"token_file": str(path), **settings})


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    registry = CollectorRegistry()
    auth = AdminAuth(admin_config(tmp_path), registry, open_paths={"/health/app"})
    served = Admin(auth, registry, str(tmp_path / "admin.sock"))
    await served.listener.start()
    yield served
    await served.listener.stop()


async def request(
    url: str, method: str = "GET", token: str | None = None, unix: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    connector = aiohttp.UnixConnector(path=unix) if unix is not None else None
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, url, headers=headers) as resp,
    ):
        body = await resp.read()
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body.decode()
        return resp.status, dict(resp.headers), parsed


async def test_probes_and_metrics_are_open_the_rest_needs_the_token(admin: Admin) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/health/app"):
        assert (await request(admin.base + path))[0] == 200, path
    status, headers, body = await request(admin.base + "/routes")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="meshgate-admin"'
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == 401
    assert body["type"].endswith("/admin-token")
    assert "Authorization: Bearer" in body["detail"]
    status, headers, body = await request(admin.base + "/routes", token=OTHER)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Bearer realm="meshgate-admin", error="invalid_token"'
    assert TOKEN not in json.dumps(body)
    status, _, body = await request(admin.base + "/routes", token=TOKEN)
    assert (status, body) == (200, {"routes": []})
    # A path that exists nowhere: the same 401, telling nothing of what exists.
    assert (await request(admin.base + "/nothing-here"))[0] == 401
    assert (await request(admin.base + "/nothing-here", token=TOKEN))[0] == 404
    assert admin.refusals() == {"missing": 2, "not_bearer": 0, "wrong_token": 1}


async def test_an_action_is_refused_without_the_token_and_not_performed(admin: Admin) -> None:
    assert (await request(admin.base + "/cache/purge", "POST"))[0] == 401
    assert (await request(admin.base + "/cache/purge", "POST", token=OTHER))[0] == 401
    assert admin.purged == 0
    status, _, body = await request(admin.base + "/cache/purge", "POST", token=TOKEN)
    assert (status, body, admin.purged) == (200, {"purged": 1}, 1)


async def test_no_spelling_of_an_open_path_reaches_a_protected_one(admin: Admin) -> None:
    # aiohttp routes on the decoded path: /%72outes is /routes, and needs the token.
    for path in ("/%72outes", "/routes/", "//routes", "/routes?x=/healthz", "/healthz/../routes"):
        status = (await request(admin.base + path))[0]
        assert status in (401, 404), path
        if status == 404:  # not routed anywhere: with the token it is a 404 too
            assert (await request(admin.base + path, token=TOKEN))[0] == 404, path


async def test_requests_over_the_unix_socket_are_trusted(admin: Admin) -> None:
    # What another edge worker does (mesh/admin_workers.py): no token, its own socket.
    status, _, body = await request("http://worker/routes", unix=admin.unix_path)
    assert (status, body) == (200, {"routes": []})
    assert (await request("http://worker/cache/purge", "POST", unix=admin.unix_path))[0] == 200
    assert admin.refusals() == {"missing": 0, "not_bearer": 0, "wrong_token": 0}


async def test_protect_metrics(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    auth = AdminAuth(admin_config(tmp_path, protect_metrics=True), registry)
    served = Admin(auth, registry, str(tmp_path / "admin.sock"))
    await served.listener.start()
    try:
        assert (await request(served.base + "/metrics"))[0] == 401
        status, _, text = await request(served.base + "/metrics", token=TOKEN)
        assert status == 200
        assert 'meshgate_admin_refusals_total{reason="missing"} 1.0' in text
        assert (await request(served.base + "/readyz"))[0] == 200
    finally:
        await served.listener.stop()


async def test_a_reload_replaces_the_token_and_can_lift_it(admin: Admin, tmp_path: Path) -> None:
    new = "b" * 32
    config = admin_config(tmp_path, new)
    reload = admin.auth.prepare_reload(_Config(config))
    assert reload.keys == ("admin.token_file", "admin.token_env", "admin.protect_metrics")
    # Prepared is not applied.
    assert (await request(admin.base + "/routes", token=TOKEN))[0] == 200
    reload.commit()
    assert (await request(admin.base + "/routes", token=TOKEN))[0] == 401
    assert (await request(admin.base + "/routes", token=new))[0] == 200
    admin.auth.prepare_reload(_Config(AdminConfig())).commit()
    assert (await request(admin.base + "/routes"))[0] == 200


class _Config:
    """The part of a whole configuration the admin auth reads."""

    def __init__(self, admin: AdminConfig) -> None:
        self.admin = admin
