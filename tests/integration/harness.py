"""Real processes for integration tests: demo apps, sidecars and edges on free ports.

Everything here starts the same binaries a user runs (``python -m meshgate ...``,
``python -m demo.service ...``) against a real Consul agent; nothing is faked.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from demo.processes import (
    ConsulAgent,
    ManagedProcess,
    free_port,
    http_ok,
    meshgate_argv,
    port_open,
    wait_until,
)
from mesh.config.merge import deep_merge


@dataclass
class App:
    name: str
    port: int
    instance: str
    process: ManagedProcess
    outbound: int
    """The port its sidecar's outbound listener will use (the app is told at start)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def faults(self, **settings: Any) -> None:
        post_json(f"{self.url}/admin/faults", settings)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/admin/stats", timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data


def http(
    url: str, headers: Mapping[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """``method`` ``url`` on a new connection, without a body; (status, lower-cased
    headers, body), errors included."""
    req = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def post_json(url: str, body: Any) -> Any:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class Sidecar:
    name: str
    instance_id: str
    inbound: int
    outbound: int
    admin: int
    process: ManagedProcess
    config_path: Path
    """The file it was started with (and reads again on SIGHUP)."""


@dataclass
class Edge:
    port: int
    admin: int
    process: ManagedProcess
    config_path: Path
    """The file it was started with (and reads again on SIGHUP)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Mesh:
    """The processes of one test; ``close`` stops them all (also on failure)."""

    workdir: Path
    consul: ConsulAgent
    processes: list[ManagedProcess] = field(default_factory=list)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        log = self.workdir / f"{name}.log"
        proc = ManagedProcess(name, argv, log_path=log).start()
        self.processes.append(proc)
        return proc

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def app(self, name: str, instance: str | None = None) -> App:
        port, outbound = free_port(), free_port()
        instance = instance or f"{name}-{port}"
        argv = [sys.executable, "-m", "demo.service", "--name", name, "--port", str(port)]
        argv += ["--instance", instance, "--outbound", f"http://127.0.0.1:{outbound}"]
        proc = self._spawn(f"app-{instance}", argv)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 15, f"app {instance}")
        return App(name, port, instance, proc, outbound)

    def auth_service(
        self,
        key_file: Path,
        *args: str,
        name: str = "auth",
        issuer: str = "http://auth.demo",
        audience: str = "meshgate",
    ) -> App:
        """The demo auth service (``demo.auth_service``) signing with ``key_file``.

        ``args`` go to its command line (e.g. ``--token-ttl 60``); its issuer is
        ``issuer`` and audience ``audience`` (by default ``http://auth.demo`` and
        ``meshgate``). Returned as an App, so a sidecar can front it;
        ``App.stats()`` reads its request counters.
        """
        port = free_port()
        argv = [sys.executable, "-m", "demo.auth_service", "--port", str(port)]
        argv += ["--issuer", issuer, "--audience", audience]
        argv += ["--key-file", str(key_file), *args]
        proc = self._spawn(f"{name}-{port}", argv)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 15, f"{name} service")
        return App(name, port, f"{name}-{port}", proc, free_port())

    def sidecar(
        self,
        app: App,
        instance_id: str | None = None,
        extra: dict[str, Any] | None = None,
        wait_ready: bool = True,
    ) -> Sidecar:
        inbound, outbound, admin = free_port(), app.outbound, free_port()
        instance_id = instance_id or f"{app.name}-{inbound}"
        config = deep_merge(
            {
                "service": {"name": app.name, "id": instance_id, "address": "127.0.0.1"},
                "app": {"address": f"127.0.0.1:{app.port}", "health_path": "/health"},
                "inbound": {"host": "127.0.0.1", "port": inbound},
                "outbound": {"host": "127.0.0.1", "port": outbound},
                "admin": {"host": "127.0.0.1", "port": admin},
                "consul": {"address": self.consul.address, "wait": "10s"},
                "registration": {"check_interval": "500ms", "resync_interval": "1s"},
                "shutdown": {"drain_delay": "200ms", "timeout": "10s"},
            },
            extra,
        )
        path = self._write(f"sidecar-{instance_id}.yaml", config)
        proc = self._spawn(
            f"sidecar-{instance_id}", meshgate_argv("sidecar", "--config", str(path))
        )
        sidecar = Sidecar(app.name, instance_id, inbound, outbound, admin, proc, path)
        if wait_ready:
            self.wait_ready(proc, admin, serving=(inbound, outbound))
            if config.get("registration", {}).get("enabled", True):
                wait_until(
                    lambda: instance_id in passing_ids(self.consul, app.name),
                    15,
                    f"{instance_id} passing in Consul",
                )
        return sidecar

    def edge(
        self,
        routes: list[dict[str, Any]],
        extra: dict[str, Any] | None = None,
        *,
        wait_ready: bool = True,
    ) -> Edge:
        port, admin = free_port(), free_port()
        config = deep_merge(
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "admin": {"host": "127.0.0.1", "port": admin},
                "consul": {"address": self.consul.address, "wait": "10s"},
                "routes": routes,
                "shutdown": {"drain_delay": "100ms", "timeout": "10s"},
            },
            extra,
        )
        path = self._write(f"edge-{port}.yaml", config)
        proc = self._spawn(f"edge-{port}", meshgate_argv("edge", "--config", str(path)))
        if wait_ready:
            self.wait_ready(proc, admin, serving=(port,))
        return Edge(port, admin, proc, path)

    def wait_ready(
        self, proc: ManagedProcess, admin: int, serving: Sequence[int] = (), timeout: float = 20
    ) -> None:
        """Until ``/readyz`` on ``admin`` says ready; then every port in ``serving`` must
        accept connections (ready means traffic may come: checked on every start)."""

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
            return http_ok(f"http://127.0.0.1:{admin}/readyz")

        try:
            wait_until(ready, timeout, f"{proc.name} ready")
        except TimeoutError:
            raise TimeoutError(f"{proc.name} not ready:\n{proc.log_tail()}") from None
        shut = [port for port in serving if not port_open("127.0.0.1", port)]
        assert not shut, f"{proc.name} ready while port {shut} is shut"

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop(timeout=5)


def consul_api(consul: ConsulAgent, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{consul.url}{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip() else None


def passing_ids(consul: ConsulAgent, service: str) -> set[str]:
    entries = consul_api(consul, "GET", f"/v1/health/service/{service}?passing=1")
    return {e["Service"]["ID"] for e in entries}


def registered_ids(consul: ConsulAgent, service: str) -> set[str]:
    entries = consul_api(consul, "GET", f"/v1/health/service/{service}")
    return {e["Service"]["ID"] for e in entries}


async def raw_request(
    port: int, head: bytes, host: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """Send exactly ``head`` (request line and headers, no body) and read one response.

    For tests that need byte-exact requests (paths clients would normalise,
    hop-by-hop headers clients would rewrite).
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        await writer.drain()
        status_line = await reader.readline()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return status, headers, body
    finally:
        writer.close()


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> tuple[float, bytes]:
    """Read until the server closes the connection: (seconds it took, what came).

    A server that closes with bytes it never read makes its kernel send a reset instead
    of a FIN; whether a request was still unread at the close is a race between the
    client's write and the server's accept. Either way the connection ended with nothing
    more sent back, so a reset reads as b"" (bytes that came before it are lost with it:
    a caller that needs them must not race a close).
    """
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        data = b""
    return time.monotonic() - started, data


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def descendants(pid: int) -> set[int]:
    """All live descendant pids of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- configuration reloads ------------------------------------------------------------


def rewrite(node: Edge | Sidecar, **changes: Any) -> None:
    """Replace top-level keys of an edge's or a sidecar's config file (None: remove the key)."""
    config = yaml.safe_load(node.config_path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    node.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def reloads(node: Edge | Sidecar) -> dict[str, float]:
    return {
        labels["outcome"]: value
        for labels, value in metrics(node.admin).get("meshgate_config_reloads_total", [])
    }


def hang_up(node: Edge | Sidecar, outcome: str, count: float = 1) -> dict[str, Any]:
    """SIGHUP, then wait until ``outcome`` has been counted ``count`` times; ``/config``."""
    node.process.send_signal(signal.SIGHUP)
    wait_until(lambda: reloads(node).get(outcome) == count, 10, f"reload {outcome}")
    with urllib.request.urlopen(f"http://127.0.0.1:{node.admin}/config", timeout=5) as resp:
        view: dict[str, Any] = json.loads(resp.read())
    return view


__all__ = ["App", "Edge", "Mesh", "Sidecar", "port_open"]


def metrics(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` on ``port`` parsed by prometheus-client's own parser: sample name →
    [(labels, value)]."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out
