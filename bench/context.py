"""The shared state of one benchmark run: its work directory and processes.

Processes belong to a scope. The run's shared scope holds what every scenario
uses (the upstream nginx, Consul, Redis, the upstream's Consul registration);
each scenario runs in its own scope, so whatever it starts is stopped right
after its measurement and never competes for the CPU with the next one.
Closing the context stops everything, in reverse order of starting.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from demo.processes import (
    PROJECT_ROOT,
    ConsulAgent,
    ManagedProcess,
    RedisServer,
)


class ScenarioFailed(RuntimeError):
    """A scenario's processes did not start or did not serve; the message says why."""


def meshgate_python() -> str:
    """The interpreter that runs ``python -m meshgate``.

    This one when it has meshgate's dependencies; otherwise the project's
    virtualenv, so ``python bench/run.py`` works from a bare interpreter too.
    """
    if importlib.util.find_spec("aiohttp") is not None:
        return sys.executable
    venv = PROJECT_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def get_status(url: str, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> int:
    """Status of GET ``url``; 0 when nothing answered."""
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as YAML (JSON, which is YAML too, when PyYAML is missing)."""
    try:
        import yaml
    except ImportError:
        path.write_text(json.dumps(data, indent=2))
    else:
        path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
    return path


class BenchContext:
    """What scenarios share: the upstream's port, Consul, Redis, and process management."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.python = meshgate_python()
        self.upstream_port: int = 0
        """Port of the upstream nginx every scenario ends at (set by the runner)."""
        self._shared = ExitStack()
        self._scope: ExitStack | None = None
        self._consul: ConsulAgent | None = None
        self._redis: RedisServer | None = None
        self._registered: set[str] = set()
        self._names: dict[str, int] = {}
        self._scope_pids: list[int] = []
        self.source_root: Path = PROJECT_ROOT
        """The checkout whose ``meshgate`` the processes started here run (its directory is
        their working directory, which ``python -m`` puts first on ``sys.path``);
        :mod:`bench.ab` ``--b-source`` sets another one for side B."""
        self.meshgate_prefix: dict[str, list[str]] = {}
        """``meshgate <command>`` runs behind this argv prefix (e.g. ``valgrind ...``) when set."""
        self.timeout_scale = 1.0
        """Start-up waits are this many times longer (a process under valgrind starts slowly)."""
        self.runtime_slowdown = 1.0
        """How many times slower than natively the proxy under test runs (under valgrind
        about 50-100x): time limits in its config sized for native speed are scaled by
        it, so that they trip no more often than they would natively (the rate
        limiter's Redis timeout, 50 ms: under valgrind a batch's reply waits longer
        than that behind the loop's other work, and the edge would measure its
        local fallback instead)."""

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Stop every process still running (scenario scope first, then shared)."""
        try:
            if self._scope is not None:
                self._scope.close()
        finally:
            self._scope = None
            self._shared.close()

    def __enter__(self) -> BenchContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def scenario_scope(self) -> Iterator[None]:
        """Processes spawned inside are stopped when the block exits, however it exits."""
        assert self._scope is None, "scenario scopes do not nest"
        self._scope = ExitStack()
        self._scope_pids = []
        try:
            with self._scope:
                yield
        finally:
            self._scope = None
            self._scope_pids = []

    @property
    def scope_pids(self) -> list[int]:
        """Pids of the processes the current scenario started (for CPU accounting)."""
        return list(self._scope_pids)

    def _stack(self) -> ExitStack:
        return self._scope if self._scope is not None else self._shared

    def on_close(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` when the current scope ends."""
        self._stack().callback(callback)

    # -- files and processes -------------------------------------------------------

    def unique_name(self, base: str) -> str:
        count = self._names.get(base, 0)
        self._names[base] = count + 1
        return base if count == 0 else f"{base}-{count}"

    def path(self, name: str) -> Path:
        return self.workdir / name

    def spawn(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        """Start ``argv`` with its output in ``<workdir>/<name>.log``; stopped with the scope."""
        proc = ManagedProcess(
            name, list(argv), log_path=self.path(f"{name}.log"), cwd=str(self.source_root)
        )
        self._stack().callback(proc.stop, 5.0)
        proc.start()
        if self._scope is not None:
            self._scope_pids.append(proc.pid)
        return proc

    def meshgate(self, command: str, name: str, config: Mapping[str, Any]) -> ManagedProcess:
        """Run ``meshgate <command> --config <workdir>/<name>.yaml`` with this config."""
        path = write_config(self.path(f"{name}.yaml"), config)
        prefix = self.meshgate_prefix.get(command, [])
        argv = [*prefix, self.python, "-m", "meshgate", command, "--config", str(path)]
        return self.spawn(name, argv)

    def wait_for(
        self,
        check: Callable[[], bool],
        what: str,
        processes: Sequence[ManagedProcess] = (),
        timeout: float = 30.0,
    ) -> None:
        """Poll ``check`` until it is true; fail fast, with the log tail, if one of
        ``processes`` exits, and with every log tail after ``timeout`` seconds."""
        timeout *= self.timeout_scale
        deadline = time.monotonic() + timeout
        while True:
            for proc in processes:
                if not proc.alive():
                    raise ScenarioFailed(f"{proc.name} exited:\n{proc.log_tail()}")
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name} ---\n{p.log_tail()}" for p in processes)
                raise ScenarioFailed(f"timed out after {timeout:g}s waiting for {what}\n{tails}")
            time.sleep(0.05)

    def wait_serving(
        self,
        url: str,
        processes: Sequence[ManagedProcess],
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Wait until GET ``url`` answers 200."""
        self.wait_for(
            lambda: get_status(url, headers) == 200, f"200 from {url}", processes, timeout
        )

    # -- shared, started on first use -----------------------------------------------

    @property
    def consul(self) -> ConsulAgent:
        """A ``consul agent -dev`` for the whole run, started the first time it is asked for."""
        if self._consul is None:
            data_dir = self.path("consul")
            data_dir.mkdir(exist_ok=True)
            agent = ConsulAgent(data_dir=str(data_dir))
            self._shared.callback(agent.stop)
            self._consul = agent.start()
        return self._consul

    @property
    def redis(self) -> RedisServer:
        """A throwaway Redis for the whole run (for rate-limit scenarios), started on first use."""
        if self._redis is None:
            server = RedisServer()
            self._shared.callback(server.stop)
            self._redis = server.start()
        return self._redis

    def consul_api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.consul.url}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def register_service(self, name: str, service_id: str, port: int) -> None:
        """Register ``127.0.0.1:port`` as an instance of ``name`` (no check: always healthy).

        Idempotent; the registration lasts for the whole run.
        """
        if service_id in self._registered:
            return
        self.consul_api(
            "PUT",
            "/v1/agent/service/register",
            {"Name": name, "ID": service_id, "Address": "127.0.0.1", "Port": port},
        )
        self._registered.add(service_id)

    def passing_ids(self, service: str) -> set[str]:
        entries = self.consul_api("GET", f"/v1/health/service/{service}?passing=1")
        return {e["Service"]["ID"] for e in entries or []}
