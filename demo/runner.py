"""``meshgate demo``: the demo mesh as local processes, no Docker needed.

Starts, in order: a Consul dev agent, a redis-server, the demo services
``users`` and ``orders`` each with its own sidecar, and the edge. ``users`` is
routed by the edge config; ``orders`` declares its own route in its Consul
service meta, to show both ways. Ctrl-C (or SIGTERM) stops everything in
reverse order; every child also dies with this process (PR_SET_PDEATHSIG).

The demo auth service runs first, behind its own sidecar and registered in
Consul like any other service; the edge requires a token (or an API key) on
every route except ``/auth/*``, and every sidecar refuses identity headers the
edge did not sign (see :mod:`demo.auth_setup`).

Every hop between the edge and the sidecars, and between sidecars, is mutual
TLS with certificates from the Consul dev agent's Connect CA; Consul's
intentions decide which service may call which (none at start: all may).

The demo's authorization service ``authz`` (:mod:`demo.authz_setup`) decides on the
requests of ``/api/admin``: the edge asks it about each one (external authorization).

The edge limits callers per role (anonymous, user, admin) and per API-key plan
in the demo's Redis (see :mod:`demo.ratelimit_setup`); ``/public/users`` is
open to anonymous callers, to watch their limit.

With an OTLP endpoint (``--otlp-endpoint``), every process (edge, sidecars,
apps) gets the standard OTEL_* variables: spans exported there, every
request sampled (a demo wants to see its request), exported within half a
second.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from demo.auth_setup import AUTH_ROUTE, AUTH_SERVICE, DemoAuth, answers_with_token
from demo.authz_setup import ADMIN_ROUTE, AUTHZ_SERVICE, edge_ext_authz
from demo.authz_setup import describe as describe_authz
from demo.processes import (
    BinaryNotFound,
    ConsulAgent,
    ManagedProcess,
    RedisServer,
    consul_binary,
    free_port,
    meshgate_argv,
    port_open,
    port_range,
    stop_all,
    wait_until,
)
from demo.ratelimit_setup import PUBLIC_ROUTE, edge_rate_limits
from demo.ratelimit_setup import describe as describe_rate_limits

DEMO_SERVICES = ("users", "orders", "inventory", AUTHZ_SERVICE)
MESH_TLS = {"enabled": True}
"""Every hop between meshgate processes is mutual TLS with Consul Connect certificates."""

WELCOME_ROUTE: dict[str, Any] = {
    "path": "/",
    "methods": ["GET", "HEAD"],
    "auth": "none",
    "direct_response": {
        "status": 200,
        "body_file": str(Path(__file__).with_name("welcome.txt")),
    },
}
"""``GET /``: where to start, answered by the edge itself (the compose edge mounts the
same file)."""


@dataclass
class SidecarPorts:
    app: int
    inbound: int
    outbound: int
    admin: int


def _pick(preferred: int) -> int:
    return preferred if not port_open("127.0.0.1", preferred) else free_port()


def edge_config(
    consul: str,
    port: int,
    admin_port: int,
    auth: dict[str, Any] | None = None,
    rate_limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "listen": {"host": "0.0.0.0", "port": port},
        "admin": {"host": "127.0.0.1", "port": admin_port},
        "consul": {"address": consul},
        "routes": [
            WELCOME_ROUTE,
            {"prefix": "/api/users", "service": "users", "prefix_rewrite": "/users"},
            AUTH_ROUTE,
            PUBLIC_ROUTE,
            ADMIN_ROUTE,
        ],
        "consul_routes": True,
        "mesh_tls": MESH_TLS,
        # Instances that keep failing leave the rotation (try the apps' /admin/faults).
        "outlier_detection": {"enabled": True},
        # authz decides on ADMIN_ROUTE's requests (demo.authz_setup).
        "ext_authz": edge_ext_authz(),
        **({"auth": auth} if auth is not None else {}),
        **({"rate_limits": rate_limits} if rate_limits is not None else {}),
    }


OWN_SERVICE = "hello"
"""The name of the user's own service, for which the demo writes a sidecar file."""
OWN_ROUTE = "/api/hello"
OWN_META = {"meshgate-route": OWN_ROUTE, "meshgate-route-strip-prefix": "true"}
"""Its route at the edge, declared in its Consul meta: /api/hello/x reaches the app as /x."""


def own_registration(app_port: int) -> str:
    """The Consul registration (JSON) of the user's own app without a sidecar: plain HTTP
    from the edge, its health checked by Consul, its route in its meta."""
    return json.dumps(
        {
            "ID": f"{OWN_SERVICE}-direct",
            "Name": OWN_SERVICE,
            "Address": "127.0.0.1",
            "Port": app_port,
            "Meta": OWN_META,
            "Check": {"HTTP": f"http://127.0.0.1:{app_port}/", "Interval": "2s"},
        },
        separators=(",", ":"),
    )


def sidecar_config(
    name: str,
    consul: str,
    ports: SidecarPorts,
    identity: dict[str, Any] | None = None,
    *,
    meta: dict[str, str] | None = None,
    health_path: str = "/health",
) -> dict[str, Any]:
    if meta is None:
        meta = {"version": "demo"}
        if name == "orders":
            # orders exposes itself: registering in Consul is enough for the edge.
            meta.update({"meshgate-route": "/api/orders", "meshgate-route-rewrite": "/orders"})
    return {
        "service": {
            "name": name,
            "id": f"{name}-1",
            "address": "127.0.0.1",
            "tags": ["demo"],
            "meta": meta,
        },
        "app": {"address": f"127.0.0.1:{ports.app}", "health_path": health_path},
        "inbound": {"host": "127.0.0.1", "port": ports.inbound},
        "outbound": {"host": "127.0.0.1", "port": ports.outbound},
        "admin": {"host": "127.0.0.1", "port": ports.admin},
        "consul": {"address": consul},
        "mesh_tls": MESH_TLS,
        **({"identity": identity} if identity is not None else {}),
    }


class DemoMesh:
    """The demo's processes; ``start`` brings them up, ``stop`` takes them all down."""

    def __init__(
        self, workdir: Path, edge_port: int = 8080, otlp_endpoint: str | None = None
    ) -> None:
        self.workdir = workdir
        self.edge_port = edge_port
        self.otlp_endpoint = otlp_endpoint
        self.admin_port = _pick(9901)
        self.consul = ConsulAgent(http_port=_pick(8500))
        self.redis = RedisServer(port=_pick(6379))
        self.processes: list[ManagedProcess] = []
        self.sidecars: dict[str, SidecarPorts] = {}
        self.auth = DemoAuth.prepare(workdir)
        self.own = SidecarPorts(_pick(9300), free_port(), free_port(), free_port())
        """The ports of the user's own service and of the sidecar the demo writes for it."""
        self.own_config = workdir / f"sidecar-{OWN_SERVICE}.yaml"

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        env = otel_env(self.otlp_endpoint) if self.otlp_endpoint else None
        proc = ManagedProcess(name, argv, env=env, log_path=self.workdir / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def start(self) -> None:
        self.consul.start()
        self.redis.start()
        self._start_auth_service()
        for name in DEMO_SERVICES:
            ports = SidecarPorts(free_port(), free_port(), free_port(), free_port())
            self.sidecars[name] = ports
            self._spawn(
                f"{name}-app",
                [
                    sys.executable,
                    "-m",
                    "demo.service",
                    "--name",
                    name,
                    "--port",
                    str(ports.app),
                    "--instance",
                    f"{name}-1",
                    "--outbound",
                    f"http://127.0.0.1:{ports.outbound}",
                ],
            )
            cfg = self._write(
                f"sidecar-{name}.yaml",
                sidecar_config(name, self.consul.address, ports, self.auth.sidecar_identity()),
            )
            self._spawn(f"{name}-sidecar", meshgate_argv("sidecar", "--config", str(cfg)))
        cfg = self._write(
            "edge.yaml",
            edge_config(
                self.consul.address,
                self.edge_port,
                self.admin_port,
                self.auth.edge_auth(self.redis.url),
                edge_rate_limits(self.redis.url),
            ),
        )
        self._spawn("edge", meshgate_argv("edge", "--config", str(cfg)))
        # Not started: the user's own app and its sidecar, to try (see describe()).
        own = sidecar_config(
            OWN_SERVICE,
            self.consul.address,
            self.own,
            self.auth.sidecar_identity(),
            meta=OWN_META,
            health_path="/",
        )
        self._write(self.own_config.name, own)
        for proc in self.processes:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
        base = f"http://127.0.0.1:{self.edge_port}"
        # Its own caller: polling counts against the per-user rate limit, and
        # must not leave alice's bucket empty for the user's first request.
        token = self.auth.token("demo-readiness")
        for name in ("users", "orders"):
            url = f"{base}/api/{name}/echo"
            wait_until(
                partial(answers_with_token, url, token), 30, f"{url} to answer through the mesh"
            )
        # /api/admin answers once the edge has the authz service in its catalog too.
        admin = self.auth.token("demo-readiness-admin", roles=("admin",))
        url = f"{base}{ADMIN_ROUTE['prefix']}/echo"
        wait_until(partial(answers_with_token, url, admin), 30, f"{url} to be authorized")

    def _start_auth_service(self) -> None:
        """The auth service and its sidecar: registered in Consul like any other service."""
        ports = SidecarPorts(free_port(), free_port(), free_port(), free_port())
        self.sidecars[AUTH_SERVICE] = ports
        self._spawn(f"{AUTH_SERVICE}-app", self.auth.auth_service_argv(ports.app))
        identity = self.auth.sidecar_identity()
        cfg = self._write(
            f"sidecar-{AUTH_SERVICE}.yaml",
            sidecar_config(AUTH_SERVICE, self.consul.address, ports, identity),
        )
        self._spawn(f"{AUTH_SERVICE}-sidecar", meshgate_argv("sidecar", "--config", str(cfg)))

    def stop(self) -> None:
        stop_all(list(reversed(self.processes)))
        self.redis.stop()
        self.consul.stop()

    def describe(self) -> str:
        base = f"http://127.0.0.1:{self.edge_port}"
        lines = [
            "meshgate demo is running:",
            f"  consul      {self.consul.url}/ui",
            f"  redis       {self.redis.url}",
            f"  edge        {base}   (admin http://127.0.0.1:{self.admin_port})",
        ]
        for name, p in self.sidecars.items():
            lines.append(
                f"  {name:<10}  app :{p.app}  sidecar inbound :{p.inbound}  "
                f"outbound :{p.outbound}  admin :{p.admin}"
            )
        key = self.auth.auth_key
        lines += [
            "",
            f"Where to start: curl {base}/",
            "",
            "Every route needs a token (or an API key), except /auth/* and /. Get one:",
            f"  TOKEN=$(curl -s {base}/auth/token -d grant_type=password -d username=alice "
            "-d password=wonderland | python3 -c 'import json,sys; "
            'print(json.load(sys.stdin)["access_token"])\')',
            f"  TOKEN=$(meshgate token --sub alice --role user --key {key})   # same, offline",
            f"  KEY=$(meshgate apikey --redis {self.redis.url} create --consumer acme "
            "--role partner)",
            "",
            "Try:",
            f'  curl -H "Authorization: Bearer $TOKEN" {base}/api/users/echo',
            f'  curl -H "X-API-Key: $KEY" {base}/api/orders/echo',
            f'  curl -H "Authorization: Bearer $TOKEN" {base}/api/orders/7'
            "   # orders asks inventory via its sidecar",
            f"  curl http://127.0.0.1:{self.admin_port}/routes",
            f"  curl http://127.0.0.1:{self.sidecars['orders'].outbound}/users/users/echo"
            "   # orders' outbound → users",
            "",
            "Every hop between meshgate processes is mutual TLS (Consul Connect). Refuse one:",
            f"  CONSUL_HTTP_ADDR={self.consul.address} {consul_binary()} intention create "
            "-deny orders inventory",
            f'  curl -H "Authorization: Bearer $TOKEN" {base}/api/orders/7'
            "   # now 502: inventory refused orders (403)",
            f"  curl http://127.0.0.1:{self.sidecars['orders'].admin}/mesh-tls"
            "   # orders' certificate",
            "",
            *(
                [f"Traces go to {self.otlp_endpoint} (Jaeger UI: http://127.0.0.1:16686)", ""]
                if self.otlp_endpoint
                else []
            ),
            f"Your own service in the mesh: run any HTTP app on :{self.own.app}, give it "
            "the sidecar written for it, call it through the edge:",
            f"  python3 -m http.server {self.own.app} &",
            f"  meshgate sidecar --config {self.own_config}"
            f"   # registers {OWN_SERVICE!r} with the route {OWN_ROUTE}",
            f'  curl -H "Authorization: Bearer $TOKEN" {base}{OWN_ROUTE}/',
            f"  # or, without a sidecar: register it in Consul yourself ({self.consul.url}/ui)",
            f"  curl -X PUT {self.consul.url}/v1/agent/service/register -d "
            f"'{own_registration(self.own.app)}'",
            "",
            *describe_rate_limits(
                base, f"http://127.0.0.1:{self.admin_port}", self.redis.url, str(key)
            ),
            "",
            *describe_authz(base, str(key)),
            "",
            f"Configs and logs: {self.workdir}",
            "Press Ctrl-C to stop everything.",
        ]
        return "\n".join(lines)


@dataclass
class _StopRequest:
    """Set by SIGINT/SIGTERM; polled by the main loop."""

    requested: bool = False

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stop was asked already; True once it was (a signal
        does not cut the sleep short, so callers poll with a short one)."""
        if not self.requested:
            time.sleep(seconds)
        return self.requested


@contextmanager
def _stop_on_signals() -> Iterator[_StopRequest]:
    stop = _StopRequest()

    def handler(signum: int, _frame: Any) -> None:
        # Only a flag: a handler runs between two bytecodes of the main thread, so
        # taking a lock here (threading.Event.set) deadlocks when the main thread
        # holds it, as it does for a moment inside Event.wait.
        stop.requested = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def otel_env(endpoint: str) -> dict[str, str]:
    """The OTEL_* variables every demo process gets for ``endpoint`` (an OTLP/HTTP base URL)."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }


def run_demo(
    edge_port: int = 8080, workdir: str | None = None, otlp_endpoint: str | None = None
) -> int:
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="meshgate-demo-"))
    wd.mkdir(parents=True, exist_ok=True)
    if port_open("127.0.0.1", edge_port):
        print(f"meshgate demo: port {edge_port} is in use; pass --edge-port", file=sys.stderr)
        return 1
    try:
        port_range()
    except ValueError as exc:
        print(f"meshgate demo: {exc}", file=sys.stderr)
        return 2
    mesh = DemoMesh(wd, edge_port, otlp_endpoint)
    with _stop_on_signals() as stop:
        try:
            mesh.start()
            print(mesh.describe(), flush=True)
            while not stop.wait(0.5):
                dead = [p for p in mesh.processes if not p.alive()]
                if dead:
                    print(
                        f"meshgate demo: {dead[0].name} exited:\n{dead[0].log_tail()}",
                        file=sys.stderr,
                    )
                    return 1
            print("\nstopping the demo mesh ...", flush=True)
            return 0
        except (BinaryNotFound, TimeoutError, RuntimeError) as exc:
            print(f"meshgate demo: {exc}", file=sys.stderr)
            return 1
        finally:
            mesh.stop()
