"""Start and stop the real processes a local mesh needs: Consul, Redis, meshgate itself.

Used by ``meshgate demo`` and by the integration tests, so both run exactly the
same binaries the same way. Every process is started on ports chosen by the
caller (usually free ones from :func:`free_port`), in its own process group, and
is told to die with its parent (``PR_SET_PDEATHSIG``) so that a killed demo or
test run leaves nothing behind.

Binaries are found in this order: the ``CONSUL_BIN`` / ``REDIS_BIN`` variables,
``PATH``, then the project's ``.tools`` folder filled by ``scripts/bootstrap``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = PROJECT_ROOT / ".tools"


class BinaryNotFound(RuntimeError):
    """A required binary is neither configured, on PATH, nor in the tools folder."""


def find_binary(name: str, env_var: str, tools_relpath: str) -> str:
    """Return the path of ``name``: ``$env_var``, then PATH, then ``.tools/<tools_relpath>``.

    Raises BinaryNotFound with a message telling the user how to get it.
    """
    configured = os.environ.get(env_var)
    if configured:
        if not os.access(configured, os.X_OK):
            raise BinaryNotFound(f"{env_var}={configured} is not an executable file")
        return configured
    on_path = shutil.which(name)
    if on_path:
        return on_path
    bundled = TOOLS_DIR / tools_relpath
    if os.access(bundled, os.X_OK):
        return str(bundled)
    raise BinaryNotFound(
        f"{name} not found: set {env_var}, put it on PATH, or run scripts/bootstrap to install it"
    )


def consul_binary() -> str:
    return find_binary("consul", "CONSUL_BIN", "consul/usr/bin/consul")


def redis_binary() -> str:
    return find_binary("redis-server", "REDIS_BIN", "redis/usr/bin/redis-server")


def redis_cli_binary() -> str:
    """``redis-cli`` beside the redis-server in use, else on PATH."""
    beside_server = Path(redis_binary()).with_name("redis-cli")
    if os.access(beside_server, os.X_OK):
        return str(beside_server)
    found = shutil.which("redis-cli")
    if found is None:
        raise BinaryNotFound("redis-cli not found beside redis-server nor on PATH")
    return found


def redis_cli(port: int, *args: str, timeout: float = 10.0) -> str:
    """Run ``redis-cli -p port args...`` against 127.0.0.1; its output (raises on failure)."""
    done = subprocess.run(
        [redis_cli_binary(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


PORT_RANGE_ENV = "MESHGATE_PORT_RANGE"
"""``LOW-HIGH`` (both included): where :func:`free_port` looks instead of
:data:`DEFAULT_PORT_RANGE`. The test suite gives each of its parallel workers a share
of its own (:func:`port_share`); the processes a worker starts inherit it."""
DEFAULT_PORT_RANGE = range(20000, 32768)
"""Where :func:`free_port` looks: below Linux's default ephemeral range (32768-60999)."""
_next: dict[range, int] = {}
"""Per range, the index of the next port :func:`free_port` tries."""


def port_range() -> range:
    """Where :func:`free_port` looks: :data:`PORT_RANGE_ENV` when set, else
    :data:`DEFAULT_PORT_RANGE`. Raises ValueError naming the variable when its value is
    not ``LOW-HIGH`` with 1024 <= LOW <= HIGH <= 65535."""
    value = os.environ.get(PORT_RANGE_ENV)
    if not value:
        return DEFAULT_PORT_RANGE
    low, _, high = value.partition("-")
    if low.strip().isdigit() and high.strip().isdigit() and 1024 <= int(low) <= int(high) <= 65535:
        return range(int(low), int(high) + 1)
    raise ValueError(f"{PORT_RANGE_ENV}={value!r}: expected LOW-HIGH within 1024-65535")


def port_share(ports: range, index: int, count: int) -> range:
    """The ``index``-th of ``count`` disjoint, contiguous shares of ``ports`` (as even as
    they can be; together they are all of it)."""
    if not 0 <= index < count:
        raise ValueError(f"share {index} of {count}")
    size = len(ports)
    return ports[index * size // count : (index + 1) * size // count]


def format_port_range(ports: range) -> str:
    """``ports`` as :data:`PORT_RANGE_ENV` writes it."""
    return f"{ports.start}-{ports.stop - 1}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now, and the one this process handed out longest ago.

    The port is only reserved by convention: the caller binds it a moment
    later. Three things make that window safe enough for a test suite that
    starts thousands of processes. The port is taken from :func:`port_range`,
    outside the range the kernel picks from for ``bind(0)`` and for the source
    port of every outgoing connection, so the kernel never gives "our" port to
    somebody else's connection in between (the bind-to-0 trick picks from that
    very range, and lost that race). A process hands its range's ports out in
    turn, from a random first one, so one comes back only after every other has
    been handed out (never twice within a test). And parallel test workers each
    look in a share of their own (:data:`PORT_RANGE_ENV`), so two of them never
    pick the same port before either has bound it.
    """
    ports = port_range()
    start = _next.get(ports)
    if start is None:
        start = random.randrange(len(ports))
    for i in range(len(ports)):
        index = (start + i) % len(ports)
        port = ports[index]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _next[ports] = index + 1
        return port
    raise RuntimeError(f"no free TCP port left in {format_port_range(ports)} on {host}")


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``check`` until it returns True; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """One child process with its log file. ``stop()`` is idempotent.

    Without a ``log_path`` the log goes to a temporary file of its own, which
    ``stop()`` removes once the process is gone (a given ``log_path`` is the
    caller's and stays).
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    cwd: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _own_log: bool = field(default=False, init=False, repr=False)

    def start(self) -> ManagedProcess:
        if self.log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"meshgate-{self.name}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(path)
            self._own_log = True
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig``, wait up to ``timeout``, then SIGKILL the group; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Anything the child left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL now, no grace (for crash tests)."""
        self.stop(timeout=5, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class ConsulAgent:
    """A ``consul agent -dev`` with every port chosen, so several can run side by side."""

    http_port: int = field(default_factory=free_port)
    data_dir: str | None = None
    """Where its config file goes; without one, a temporary directory that ``stop()`` removes."""
    https_port: int = -1
    """Its HTTPS API's port (-1: none); ``extra_config`` must then name its certificate."""
    extra_config: str = ""
    """More HCL for its config file (e.g. ``cert_file``, ``key_file``, ``ca_file``)."""
    process: ManagedProcess | None = field(default=None, init=False)
    _own_dir: bool = field(default=False, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 30.0) -> ConsulAgent:
        if self.data_dir is None:
            self.data_dir = tempfile.mkdtemp(prefix="meshgate-consul-")
            self._own_dir = True
        ports = {
            "http": self.http_port,
            "https": self.https_port,
            "dns": free_port(),
            "serf_lan": free_port(),
            "serf_wan": free_port(),
            "server": free_port(),
            "grpc": -1,
        }
        config = (
            "ports { " + " ".join(f"{k} = {v}" for k, v in ports.items()) + " }\n"
            # Quick leader election and check reaping keep tests fast.
            "performance { raft_multiplier = 1 }\n" + self.extra_config
        )
        config_file = Path(self.data_dir) / "ports.hcl"
        config_file.write_text(config)
        argv = [
            consul_binary(),
            "agent",
            "-dev",
            "-bind",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
            "-node",
            f"meshgate-{self.http_port}",
            "-config-file",
            str(config_file),
            "-log-level",
            "warn",
        ]
        self.process = ManagedProcess("consul", argv).start()
        try:
            wait_until(self._leader_elected, timeout, f"consul on {self.address}")
        except TimeoutError:
            raise TimeoutError(f"consul did not start:\n{self.process.log_tail()}") from None
        return self

    def _leader_elected(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"consul exited:\n{self.process.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/v1/status/leader", timeout=1) as resp:
                return resp.read().strip() not in (b"", b'""')
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._own_dir = False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


@dataclass
class RedisServer:
    """A throwaway ``redis-server`` on a chosen port, without persistence."""

    port: int = field(default_factory=free_port)
    extra_args: Sequence[str] = ()
    process: ManagedProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        argv = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            *self.extra_args,
        ]
        self.process = ManagedProcess(f"redis-{self.port}", argv).start()
        try:
            wait_until(lambda: port_open("127.0.0.1", self.port), timeout, f"redis on {self.port}")
        except TimeoutError:
            raise TimeoutError(f"redis did not start:\n{self.process.log_tail()}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


@dataclass
class RedisCluster:
    """A real Redis Cluster of ``masters`` cluster-enabled redis-servers, no replicas.

    Made with ``redis-cli --cluster create``; ``start`` returns once every node
    reports ``cluster_state:ok``. Node data lives under ``base_dir``.
    """

    base_dir: Path
    masters: int = 3
    servers: list[RedisServer] = field(default_factory=list, init=False)

    @property
    def url(self) -> str:
        """Any one node; a cluster client discovers the rest."""
        return self.servers[0].url

    def start(self, timeout: float = 30.0) -> RedisCluster:
        try:
            for _ in range(self.masters):
                port = free_port()
                node_dir = self.base_dir / f"node-{port}"
                node_dir.mkdir(parents=True)
                server = RedisServer(
                    port=port,
                    extra_args=[
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(node_dir / f"nodes-{port}.conf"),
                        # An explicit bus port: port + 10000 may be taken or out of range.
                        "--cluster-port", str(free_port()),
                        "--dir", str(node_dir),
                    ],
                )  # fmt: skip
                self.servers.append(server.start())
            addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
            redis_cli(self.servers[0].port, "--cluster", "create", *addresses,
                      "--cluster-replicas", "0", "--cluster-yes", timeout=timeout)  # fmt: skip
            for server in self.servers:

                def cluster_ok(port: int = server.port) -> bool:
                    return "cluster_state:ok" in redis_cli(port, "cluster", "info")

                wait_until(cluster_ok, timeout, f"cluster_state:ok on {server.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 10.0) -> None:
    """SIGTERM every process at once, then wait for each (SIGKILL after ``timeout``).

    Each meshgate process drains on its own; doing it in parallel keeps Ctrl-C
    on a dozen processes as quick as stopping one.
    """
    for proc in processes:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in processes:
        proc.stop(timeout=max(0.1, deadline - time.monotonic()))


def meshgate_argv(*args: str) -> list[str]:
    """argv that runs the ``meshgate`` command with this interpreter."""
    return [sys.executable, "-m", "meshgate", *args]
