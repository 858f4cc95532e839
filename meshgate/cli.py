"""The ``meshgate`` command: the one place where edge, sidecar and demo are wired together."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from mesh.config.errors import ConfigError
from mesh.server import install_fast_loop

EXIT_CONFIG = 2


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _cmd_edge(args: argparse.Namespace) -> int:
    from edge.config import load_edge_config
    from edge.main import run_edge

    config = load_edge_config(args.config)
    _configure_logging(config.logging.level)
    install_fast_loop()
    asyncio.run(run_edge(config))
    return 0


def _cmd_sidecar(args: argparse.Namespace) -> int:
    from sidecar.config import load_sidecar_config
    from sidecar.main import run_sidecar

    config = load_sidecar_config(args.config)
    _configure_logging(config.logging.level)
    install_fast_loop()
    asyncio.run(run_sidecar(config))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from demo.runner import run_demo

    _configure_logging("info")
    return run_demo(edge_port=args.edge_port, workdir=args.workdir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshgate",
        description=(
            "meshgate: a service-discovery-driven mesh gateway. The edge is the entry point "
            "for outside traffic; a sidecar runs beside each service instance. Both find "
            "services in Consul's health-checked catalog."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    edge = sub.add_parser(
        "edge",
        help="run the edge gateway",
        description="Run the edge gateway: routes outside traffic to services found in Consul.",
    )
    edge.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="FILE",
        help="edge configuration (YAML); see deploy/examples/edge.yaml",
    )
    edge.set_defaults(func=_cmd_edge)

    sidecar = sub.add_parser(
        "sidecar",
        help="run a sidecar beside one service instance",
        description=(
            "Run a sidecar: registers the service in Consul, forwards inbound traffic to the "
            "local app, and carries the app's calls to other services (outbound listener)."
        ),
    )
    sidecar.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="FILE",
        help="sidecar configuration (YAML); see deploy/examples/sidecar.yaml",
    )
    sidecar.set_defaults(func=_cmd_sidecar)

    demo = sub.add_parser(
        "demo",
        help="bring up a demo mesh as local processes (no Docker needed)",
        description=(
            "Start Consul (dev agent), Redis, the edge on :8080 and the demo services "
            "users and orders, each with its own sidecar. Ctrl-C stops everything."
        ),
    )
    demo.add_argument("--edge-port", type=int, default=8080, help="edge port (default 8080)")
    demo.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="where generated configs and logs go (default: a new temporary directory)",
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"meshgate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
