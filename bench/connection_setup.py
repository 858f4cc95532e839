"""New connections to a mesh-TLS inbound port: what the first-byte sniffing costs each one.

    .venv/bin/python -m bench.connection_setup [--duration 5] [--rounds 3] [--clients 8]
                                               [--json-out FILE]

A sidecar's inbound port takes TLS and plain HTTP alike (:mod:`mesh.sniffing_site`):
each new connection is accepted by meshgate itself, waited on for its first
byte, and handed to the HTTP server with or without TLS. Mesh callers keep
their connections, so a request rarely pays this; this bench measures what it
costs when connections do not last: every connection does one mutual-TLS
handshake (EC P-256 certificates from a test Connect CA, as Consul issues),
one ``GET /`` answered 200 by the listener itself (nothing proxied), and
closes.

Targets, each one process pinned to its own CPU (the clients run on the other):

* ``nginx-mtls``: nginx, ``ssl_verify_client on``, ``return 200``;
* ``meshgate-mtls``: a :class:`mesh.server.Listener` with the mesh-TLS server
  context on aiohttp's own TCP site (what a sidecar's inbound was before the
  sniffing site);
* ``meshgate-mtls-sniffing``: the same listener with ``plain_too`` (what a
  sidecar's inbound is now);
* ``meshgate-plain-sniffing`` and ``meshgate-plain``: plain-HTTP clients, on
  the sniffing site and on aiohttp's plain site.

Reported per target, medians of ``--rounds`` rounds (targets in a new random
order each round): connections a second and the server's CPU time per
connection (its ``/proc`` ticks over the connections completed), the figure
to read on this shared 2-core machine. Results go to
``bench/results/connection_setup.json`` (or ``--json-out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import BenchContext
from bench.cpu import pin_tree, reserve_proxy_cpu, tree_cpu_seconds
from bench.proxies import start_nginx
from demo.processes import free_port, port_open
from tests.mesh.mtls.connect_ca import ConnectCa

RESULTS = Path(__file__).parent / "results" / "connection_setup.json"
CALLEE = "bench-callee"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    pid: int
    tls: bool


@dataclass(frozen=True)
class Material:
    """The callee's leaf and the roots, as Consul's JSON and as PEM files for nginx."""

    leaf: Path
    roots: Path
    cert_pem: Path
    key_pem: Path
    roots_pem: Path
    client: ssl.SSLContext


def make_material(directory: Path) -> Material:
    ca = ConnectCa()
    leaf, roots = ca.leaf(CALLEE), ca.roots()
    caller = ca.leaf("bench-caller")
    paths = {name: directory / name for name in ("leaf.json", "roots.json", "cert.pem", "key.pem")}
    paths["leaf.json"].write_text(json.dumps(leaf))
    paths["roots.json"].write_text(json.dumps(roots))
    paths["cert.pem"].write_text(leaf["CertPEM"])
    paths["key.pem"].write_text(leaf["PrivateKeyPEM"])
    roots_pem = directory / "roots.pem"
    roots_pem.write_text(roots["Roots"][0]["RootCert"])
    (directory / "caller.pem").write_text(caller["CertPEM"])
    (directory / "caller.key").write_text(caller["PrivateKeyPEM"])
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False  # mesh peers are checked by SPIFFE URI, not by name
    client.load_verify_locations(roots_pem)
    client.load_cert_chain(directory / "caller.pem", directory / "caller.key")
    return Material(
        paths["leaf.json"],
        paths["roots.json"],
        paths["cert.pem"],
        paths["key.pem"],
        roots_pem,
        client,
    )


def serve(argv: Sequence[str]) -> None:
    """The meshgate side: one listener, serving until killed."""
    parser = argparse.ArgumentParser(prog="bench.connection_setup serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--leaf", type=Path, required=True)
    parser.add_argument("--roots", type=Path, required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--sniffing", action="store_true")
    args = parser.parse_args(argv)

    from aiohttp import web

    from mesh.mtls.contexts import MeshTls
    from mesh.mtls.material import Leaf, Roots
    from mesh.server import Listener, install_fast_loop

    async def ok(_: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    async def main() -> None:
        mesh_tls = MeshTls(CALLEE, require=False)
        mesh_tls.update(
            Leaf.from_consul(json.loads(args.leaf.read_text())),
            Roots.from_consul(json.loads(args.roots.read_text())),
        )
        context = mesh_tls.server.context if args.tls or args.sniffing else None
        listener = Listener(
            "inbound", ok, "127.0.0.1", args.port, ssl_context=context, plain_too=args.sniffing
        )
        await listener.start()
        await asyncio.Event().wait()

    install_fast_loop()
    asyncio.run(main())


def start_targets(ctx: BenchContext, material: Material) -> list[Target]:
    targets = []
    port = free_port()
    block = f"""\
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {material.cert_pem};
        ssl_certificate_key {material.key_pem};
        ssl_client_certificate {material.roots_pem};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "ok"; }}
    }}"""
    start_nginx(ctx, "nginx-mtls", block, port, probe=False)
    targets.append(Target("nginx-mtls", port, ctx.scope_pids[-1], tls=True))
    variants = [
        ("meshgate-mtls", ["--tls"], True),
        ("meshgate-mtls-sniffing", ["--sniffing"], True),
        ("meshgate-plain-sniffing", ["--sniffing"], False),
        ("meshgate-plain", [], False),
    ]
    for name, flags, tls in variants:
        port = free_port()
        argv = [ctx.python, "-m", "bench.connection_setup", "serve", "--port", str(port)]
        argv += ["--leaf", str(material.leaf), "--roots", str(material.roots), *flags]
        proc = ctx.spawn(name, argv)
        ctx.wait_for(lambda p=port: port_open("127.0.0.1", p), f"{name} listening", [proc])
        assert proc.proc is not None
        targets.append(Target(name, port, proc.proc.pid, tls))
    return targets


async def load(target: Target, client: ssl.SSLContext, clients: int, seconds: float) -> int:
    """Connections completed (handshake, one request, 200, close) by ``clients``
    concurrent callers in ``seconds``."""
    deadline = time.monotonic() + seconds
    context = client if target.tls else None

    async def caller() -> int:
        done = 0
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", target.port, ssl=context)
            writer.write(REQUEST)
            answer = await reader.read()
            writer.close()
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{target.name} answered {answer[:80]!r}")
            done += 1
        return done

    return sum(await asyncio.gather(*(caller() for _ in range(clients))))


def measure(
    target: Target, client: ssl.SSLContext, clients: int, seconds: float
) -> dict[str, float]:
    before = tree_cpu_seconds([target.pid])
    started = time.monotonic()
    done = asyncio.run(load(target, client, clients, seconds))
    elapsed = time.monotonic() - started
    cpu = tree_cpu_seconds([target.pid]) - before
    return {"connections_per_sec": done / elapsed, "cpu_us_per_connection": cpu / done * 1e6}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        serve(args[1:])
        return 0
    parser = argparse.ArgumentParser(prog="bench.connection_setup")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json-out", type=Path, default=RESULTS)
    opts = parser.parse_args(args)
    split = reserve_proxy_cpu()
    rounds: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="meshgate-conn-bench-") as work:
        workdir = Path(work)
        material = make_material(workdir)
        with BenchContext(workdir) as ctx, ctx.scenario_scope():
            targets = start_targets(ctx, material)
            if split is not None:
                pin_tree([t.pid for t in targets], {split[0]})
            for target in targets:  # warm up: imports, first handshakes
                measure(target, material.client, opts.clients, 0.5)
            for _ in range(opts.rounds):
                for target in random.sample(targets, len(targets)):
                    result = measure(target, material.client, opts.clients, opts.duration)
                    rounds.setdefault(target.name, []).append(result)
    summary = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in rounds.items()
    }
    options = {**vars(opts), "json_out": str(opts.json_out)}
    report: dict[str, Any] = {"options": options, "median": summary, "rounds": rounds}
    opts.json_out.parent.mkdir(exist_ok=True)
    opts.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'target':<26} {'conn/s':>8} {'server CPU/conn':>16}")
    for name, figures in summary.items():
        print(
            f"{name:<26} {figures['connections_per_sec']:>8,.0f} "
            f"{figures['cpu_us_per_connection']:>13,.0f} µs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
