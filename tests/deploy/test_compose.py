"""docker-compose.yml: checked by the compose tools themselves, and brought up where an engine is.

``docker-compose config`` (and ``docker compose config``) parse, validate and
interpolate the file without an engine; the tests read their normalised output
(each tool writes ports, volumes and commands its own way, so they are
normalised here). The last test builds the image and starts the whole stack
through a real Docker engine, and is skipped where none answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.config import load_edge_config
from mesh.config.types import split_host_port
from sidecar.config import load_sidecar_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

EXPECTED_SERVICES = {
    "consul",
    "redis",
    "edge",
    "users",
    "users-sidecar",
    "orders",
    "orders-sidecar",
    "auth",
    "auth-sidecar",
}
MESHGATE_SERVICES = EXPECTED_SERVICES - {"consul", "redis"}

# Variables docker-compose.yml interpolates; unset, the defaults apply.
_STACK_VARIABLES = (
    "MESHGATE_EDGE_PORT",
    "MESHGATE_ADMIN_PORT",
    "CONSUL_PORT",
    "MESHGATE_IMAGE",
    "MESHGATE_LOG_LEVEL",
)


# --- finding a compose implementation ----------------------------------------------


def _standalone() -> list[str] | str:
    found = shutil.which("docker-compose")
    return [found] if found else "the docker-compose binary is not installed"


def _plugin() -> list[str] | str:
    docker = shutil.which("docker")
    if docker is None:
        return "the docker CLI is not installed"
    try:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker compose version` failed: {exc}"
    if probe.returncode != 0:
        return "the docker CLI has no compose plugin (`docker compose version` failed)"
    return [docker, "compose"]


_IMPLEMENTATIONS = {"docker-compose": _standalone, "docker compose": _plugin}


def _clean_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _STACK_VARIABLES and not k.startswith("COMPOSE_")
    }
    env.update(overrides)
    return env


def _config(command: list[str], env: Mapping[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{shlex.join(command)} config failed:\n{proc.stderr}"
    tree = yaml.safe_load(proc.stdout)
    assert isinstance(tree, dict)
    return tree


@pytest.fixture(scope="module", params=sorted(_IMPLEMENTATIONS))
def compose(request: pytest.FixtureRequest) -> list[str]:
    found = _IMPLEMENTATIONS[request.param]()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def services(compose: list[str]) -> dict[str, dict[str, Any]]:
    tree = _config(compose, _clean_env())
    result: dict[str, dict[str, Any]] = tree["services"]
    return result


# --- normalising each tool's output -----------------------------------------------------


@dataclass(frozen=True)
class Port:
    host_ip: str
    published: int | None
    target: int


def _ports(service: Mapping[str, Any]) -> list[Port]:
    out: list[Port] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append(
                Port(
                    str(entry.get("host_ip") or ""),
                    int(published) if published not in (None, "") else None,
                    int(entry["target"]),
                )
            )
            continue
        parts = str(entry).split("/")[0].split(":")  # [ip:][published:]target
        target = int(parts[-1])
        published_text = parts[-2] if len(parts) >= 2 else ""
        host_ip = parts[-3] if len(parts) >= 3 else ""
        out.append(Port(host_ip, int(published_text) if published_text else None, target))
    return out


def _binds(service: Mapping[str, Any]) -> dict[str, tuple[Path, bool]]:
    """Container path → (host path, read-only)."""
    out: dict[str, tuple[Path, bool]] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            out[entry["target"]] = (Path(entry["source"]), bool(entry.get("read_only")))
        else:
            source, target, *mode = str(entry).split(":")
            out[target] = (Path(source), bool(mode) and "ro" in mode[0].split(","))
    return out


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _option(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def _mounted_config(service: Mapping[str, Any]) -> Path:
    """The host file mounted where the service's ``--config`` points."""
    path = _option(_argv(service.get("command")), "--config")
    binds = _binds(service)
    assert path in binds, f"--config {path} is not a mounted file"
    source, read_only = binds[path]
    assert source.is_file(), f"{source} (mounted at {path}) does not exist"
    assert read_only, f"{source} should be mounted read-only"
    return source


# --- the file, as compose reads it ---------------------------------------------------


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= EXPECTED_SERVICES


def test_edge_publishes_8080_and_admin_on_loopback(services: dict[str, dict[str, Any]]) -> None:
    edge = services["edge"]
    config = load_edge_config(_mounted_config(edge))
    ports = _ports(edge)
    assert Port("", 8080, config.listen.port) in ports or Port("0.0.0.0", 8080, 8080) in ports
    assert config.listen.port == 8080
    assert Port("127.0.0.1", 9901, config.admin.port) in ports
    assert _argv(edge["command"])[0] == "edge"
    assert "consul" in edge["depends_on"]


def test_host_ports_can_be_moved(compose: list[str]) -> None:
    moved = _clean_env(MESHGATE_EDGE_PORT="18080", MESHGATE_ADMIN_PORT="19901", CONSUL_PORT="18500")
    tree = _config(compose, moved)
    edge = _ports(tree["services"]["edge"])
    assert {(p.published, p.target) for p in edge} == {(18080, 8080), (19901, 9901)}
    assert [(p.published, p.target) for p in _ports(tree["services"]["consul"])] == [(18500, 8500)]


def test_every_sidecar_config_exists_and_fits_its_app(services: dict[str, dict[str, Any]]) -> None:
    sidecars = {n: s for n, s in services.items() if _argv(s.get("command"))[:1] == ["sidecar"]}
    assert {"users-sidecar", "orders-sidecar"} <= set(sidecars)
    for name, sidecar in sidecars.items():
        config = load_sidecar_config(_mounted_config(sidecar))
        # Shares its app's network namespace; other containers and Consul's
        # health check reach it by the app service's name.
        assert sidecar["network_mode"] == f"service:{config.service.address}", name
        app = services[config.service.address]
        app_argv = _argv(app["command"])
        if config.service.name == "auth":
            assert _argv(app["entrypoint"]) == ["python", "-m", "demo.auth_service"]
        else:
            assert _argv(app["entrypoint"]) == ["python", "-m", "demo.service"]
            assert _option(app_argv, "--name") == config.service.name
        host, port = split_host_port(config.app.address, 80)
        assert (_option(app_argv, "--host"), int(_option(app_argv, "--port"))) == (host, port)
        assert f":{config.admin.port}/readyz" in " ".join(_argv(sidecar["healthcheck"]["test"]))
        assert "consul" in sidecar["depends_on"]


def test_meshgate_services_share_one_image_built_here(services: dict[str, dict[str, Any]]) -> None:
    images = {services[n]["image"] for n in MESHGATE_SERVICES}
    assert images == {"meshgate:dev"}
    for name in MESHGATE_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT, name
        assert (ROOT / build.get("dockerfile", "Dockerfile")).is_file()


def test_consul_and_redis(services: dict[str, dict[str, Any]]) -> None:
    consul = services["consul"]
    assert consul["image"].startswith("hashicorp/consul:")
    argv = _argv(consul["command"])
    assert "-dev" in argv
    assert _option(argv, "-client") == "0.0.0.0"
    assert [(p.published, p.target) for p in _ports(consul)] == [(8500, 8500)]
    assert services["redis"]["image"] == "redis:7-alpine"


# --- the stack, brought up by a real engine ----------------------------------------------


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine_or_skip() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=15)
        client.ping()
    except Exception:
        pytest.skip(f"no Docker engine answers at {_docker_host()}")
    return client


def _published_host() -> str:
    """Where ports published by the engine are reached from here."""
    url = urllib.parse.urlparse(_docker_host())
    if url.scheme in ("tcp", "http", "https") and url.hostname:
        return url.hostname
    return "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, data=data, headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc).encode()


def _wait_for_200(
    url: str, timeout: float, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    status, body = 0, b""
    while time.monotonic() < deadline:
        status, body = _get(url, headers, data)
        if status == 200:
            break
        time.sleep(1)
    return status, body


@contextlib.contextmanager
def _stack(compose: list[str], env: dict[str, str]) -> Iterator[list[str]]:
    """``up -d`` the stack under its own project name; always ``down`` it."""
    base = [*compose, "-p", f"meshgate-test-{uuid.uuid4().hex[:8]}", "-f", str(COMPOSE_FILE)]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*base, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        if check:
            assert proc.returncode == 0, f"{shlex.join(args)} failed:\n{proc.stderr}"
        return proc

    try:
        run("up", "-d", "--no-build")
        yield base
    finally:
        run("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


def _logs(base: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [*base, "logs", "--no-color", "--tail", "40"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout + proc.stderr


@pytest.mark.integration
@pytest.mark.timeout(1500)
def test_stack_answers_through_the_edge() -> None:
    client = _engine_or_skip()
    found = _plugin()
    if isinstance(found, str):
        found = _standalone()
    if isinstance(found, str):
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    compose = found

    import docker.errors

    tag = f"meshgate:test-{uuid.uuid4().hex[:8]}"
    try:
        client.images.build(path=str(ROOT), dockerfile="Dockerfile", tag=tag, rm=True)
    except docker.errors.BuildError as exc:
        tail = "".join(str(c.get("stream") or c.get("error") or "") for c in exc.build_log)
        pytest.fail(f"the image did not build: {exc}\n{tail[-4000:]}")
    edge_port = _free_port()
    env = _clean_env(
        MESHGATE_IMAGE=tag,
        MESHGATE_EDGE_PORT=str(edge_port),
        MESHGATE_ADMIN_PORT=str(_free_port()),
        CONSUL_PORT=str(_free_port()),
    )
    base_url = f"http://{_published_host()}:{edge_port}"
    try:
        with _stack(compose, env) as base:
            # Demo routes need a token; the auth service's /auth/token is public.
            login = b"grant_type=password&username=alice&password=wonderland"
            status, body = _wait_for_200(f"{base_url}/auth/token", timeout=180, data=login)
            assert status == 200, f"auth: {status} {body[:500]!r}\n{_logs(base, env)}"
            bearer = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
            status, body = _wait_for_200(f"{base_url}/api/users/echo", 180, bearer)
            assert status == 200, f"users: {status} {body[:500]!r}\n{_logs(base, env)}"
            echoed = json.loads(body)
            assert (echoed["service"], echoed["path"]) == ("users", "/users/echo")
            # orders is exposed by the route in its own Consul meta.
            status, body = _wait_for_200(f"{base_url}/api/orders/echo", 60, bearer)
            assert status == 200, f"orders: {status} {body[:500]!r}\n{_logs(base, env)}"
            assert json.loads(body)["path"] == "/orders/echo"
    finally:
        with contextlib.suppress(Exception):
            client.images.remove(tag, force=True)
