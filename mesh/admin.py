"""The admin listener shared by edge and sidecar: health, readiness, routes, metrics.

It runs on its own port so that probes and scrapes never compete with, or get
rate-limited like, user traffic. With an admin token configured, whoever
reaches the port also needs the token for anything but the probes
(:mod:`mesh.admin_auth`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from mesh.admin_auth import AdminAuth
from mesh.telemetry.exposition import Render, exposition

JsonView = Callable[[], Mapping[str, Any]]
AdminHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as indented JSON, keys sorted (what every admin view answers)."""
    return web.Response(
        body=json.dumps(data, indent=2, sort_keys=True, default=str).encode(),
        status=status,
        content_type="application/json",
    )


def readiness(*, draining: bool, **conditions: bool) -> tuple[bool, Mapping[str, bool]]:
    """What ``/readyz`` reports: ready when every one of ``conditions`` holds and the
    process is not draining; the body names each condition and ``draining``.

    The edge and the sidecar pass ``catalog`` (the first snapshot is in) and
    ``listening`` (every listener that takes traffic is open: the one routing
    by the catalog opens only after it, so a catalog alone would send traffic
    to a closed port); the sidecar ``registered`` too.
    """
    return all(conditions.values()) and not draining, {**conditions, "draining": draining}


def build_admin_app(
    *,
    ready: Callable[[], tuple[bool, Mapping[str, Any]]],
    views: Mapping[str, JsonView],
    registry: CollectorRegistry | Render,
    handlers: Mapping[str, AdminHandler] = {},
    endpoints: Mapping[tuple[str, str], AdminHandler] = {},
    across: Callable[[AdminHandler], AdminHandler] = lambda handler: handler,
    auth: AdminAuth | None = None,
) -> web.Application:
    """``ready`` returns (is_ready, details); each view is served as JSON at its path,
    each of ``handlers`` answers GET at its own, and each of ``endpoints`` answers its
    (method, path), e.g. ``("POST", "/cache/purge")``.

    ``across`` wraps the handler of every view and every GET (the edge's workers
    answer ``?workers=all`` with it: :meth:`mesh.admin_workers.AdminWorkers.across`);
    other endpoints are left as given, their owners knowing whether they act on every
    worker.

    ``auth`` decides, before any handler runs, which requests need the admin token
    (None: every request is served, as without a token)."""
    app = web.Application(middlewares=[auth.middleware] if auth is not None else [])

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        ok, details = ready()
        return json_response({"ready": ok, **details}, 200 if ok else 503)

    render = exposition(registry) if isinstance(registry, CollectorRegistry) else registry

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render(request.headers.get("Accept", ""))
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for path, view in views.items():
        app.router.add_get(path, across(_view_handler(view)))
    for path, handler in handlers.items():
        app.router.add_get(path, across(handler))
    for (method, path), handler in endpoints.items():
        app.router.add_route(method, path, across(handler) if method == "GET" else handler)
    return app


def _view_handler(view: JsonView) -> AdminHandler:
    async def handle(_: web.Request) -> web.StreamResponse:
        return json_response(view())

    return handle
