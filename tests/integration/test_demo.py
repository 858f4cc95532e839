"""``meshgate demo`` brings a working mesh up and Ctrl-C takes every process down."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from demo.processes import free_port, http_ok, meshgate_argv, port_open, wait_until
from tests.integration.harness import descendants, http, pid_alive


def your_own_service(
    tmp_path: Path, port: int, token: str, started: list[subprocess.Popen[bytes]]
) -> None:
    """What the demo prints under "Your own service in the mesh", done: an app, the
    sidecar file the demo wrote for it, its route at the edge; then the same app
    registered in Consul without a sidecar. The processes it starts go in ``started``."""
    printed = (tmp_path / "demo.out").read_text()
    workdir = tmp_path / "demo"
    own_config = workdir / "sidecar-hello.yaml"
    assert f"meshgate sidecar --config {own_config}" in printed
    own = yaml.safe_load(own_config.read_text())
    app_port = int(own["app"]["address"].rsplit(":", 1)[1])
    assert f"python3 -m http.server {app_port} &" in printed
    consul = yaml.safe_load((workdir / "edge.yaml").read_text())["consul"]["address"]
    register = f"curl -X PUT http://{consul}/v1/agent/service/register -d "
    [registration] = [line for line in printed.splitlines() if register in line]
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello from my own app\n")
    app = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(app_port), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started.append(app)
    sidecar = subprocess.Popen(
        meshgate_argv("sidecar", "--config", str(own_config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started.append(sidecar)
    auth = {"Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{port}/api/hello/hello.txt"

    def answer() -> tuple[int, bytes]:
        status, _, body = http(url, auth)
        return status, body

    # Polled gently: alice's requests are rate limited (5/s, burst 10) like anyone's.
    wait_until(lambda: answer()[0] == 200, 30, "/api/hello through its sidecar", interval=0.3)
    assert answer() == (200, b"hello from my own app\n")
    sidecar.send_signal(signal.SIGTERM)  # deregisters: no instance declares the route
    assert sidecar.wait(30) == 0
    wait_until(lambda: answer()[0] == 404, 15, "the route to go with its instance", interval=0.3)

    body = registration.split(" -d ", 1)[1].strip("'").encode()
    put = urllib.request.Request(
        f"http://{consul}/v1/agent/service/register", data=body, method="PUT"
    )
    with urllib.request.urlopen(put, timeout=5) as resp:
        assert resp.status == 200
    wait_until(
        lambda: answer()[0] == 200, 30, "/api/hello registered without a sidecar", interval=0.3
    )
    assert answer() == (200, b"hello from my own app\n")


def test_demo_serves_through_sidecars_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    port = 8080 if not port_open("127.0.0.1", 8080) else free_port()
    log = (tmp_path / "demo.out").open("w")
    proc = subprocess.Popen(
        meshgate_argv("demo", "--edge-port", str(port), "--workdir", str(tmp_path / "demo")),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    children: set[int] = set()
    yours: list[subprocess.Popen[bytes]] = []
    try:
        url = f"http://127.0.0.1:{port}/api/users/echo"
        wait_until(
            lambda: "Press Ctrl-C" in (tmp_path / "demo.out").read_text(), 90, "the demo mesh"
        )
        assert not http_ok(url), "demo routes require a token"
        # GET / says where to start, with no token: the edge answers it itself.
        status, _, welcome = http(f"http://127.0.0.1:{port}/")
        assert status == 200 and welcome.startswith(b"meshgate demo\n")
        assert b"/auth/token" in welcome
        # /auth/* is public: the README's way to get a token.
        login = urllib.parse.urlencode(
            {"grant_type": "password", "username": "alice", "password": "wonderland"}
        ).encode()
        token_url = f"http://127.0.0.1:{port}/auth/token"
        with urllib.request.urlopen(token_url, data=login, timeout=5) as resp:
            token = json.loads(resp.read())["access_token"]
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body["service"] == "users"
        headers = {k.lower(): v for k, v in body["headers"]}
        # Two hops appended X-Forwarded-For: the edge (client) and the sidecar (edge).
        assert len(headers["x-forwarded-for"].split(",")) == 2
        # /api/admin is the demo authz service's to decide: alice is no admin.
        admin_url = f"http://127.0.0.1:{port}/api/admin/echo"
        status, admin_headers, _ = http(admin_url, {"Authorization": f"Bearer {token}"})
        assert (status, admin_headers["x-authz-reason"]) == (403, "role admin required")
        your_own_service(tmp_path, port, token, yours)
        children = descendants(proc.pid)
        assert len(children) >= 7  # consul, redis, 2 apps, 2 sidecars, edge
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in children if pid_alive(p)]
        assert not left, f"processes left behind: {left}"
    finally:
        for own in yours:
            own.kill()
            own.wait()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:
            if pid_alive(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)
        log.close()
        print((tmp_path / "demo.out").read_text())
