"""The ``meshgate`` command: the one place where edge, sidecar and demo are wired together."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mesh.config.errors import ConfigError
from mesh.server import install_fast_loop

if TYPE_CHECKING:
    from edge.config import EdgeConfig

EXIT_CONFIG = 2
CHECK_HELP = (
    "check the configuration and the files it names (certificates, keys, the static "
    "catalog, the access log's directory), then exit: 0 if it would start, 2 with the "
    "problem if not; nothing is contacted or bound"
)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load_edge(args: argparse.Namespace) -> EdgeConfig:
    """The edge's config file with the command line's overrides: at start and each reload."""
    from edge.config import load_edge_config

    config = load_edge_config(args.config)
    if args.workers is not None:
        config = config.model_copy(update={"workers": args.workers})
    if config.workers > 1 and 0 in (config.listen.port, config.admin.port):
        raise ConfigError(args.config, "several workers need fixed ports (not 0)", "workers")
    return config


def _cmd_edge(args: argparse.Namespace) -> int:
    from edge.main import run_edge

    config = _load_edge(args)
    if args.check:
        from meshgate.check_command import check_edge

        print(check_edge(config, args.config))
        return 0
    _configure_logging(config.logging.level)
    install_fast_loop()

    def serve() -> None:
        asyncio.run(run_edge(config, lambda: _load_edge(args), args.config))

    if config.workers == 1:
        serve()
        return 0
    from mesh.workers import run_workers

    def work(_index: int) -> int:
        serve()
        return 0

    return run_workers(config.workers, work, name="edge worker")


def _cmd_sidecar(args: argparse.Namespace) -> int:
    from sidecar.config import load_sidecar_config
    from sidecar.main import run_sidecar

    config = load_sidecar_config(args.config)
    if args.check:
        from meshgate.check_command import check_sidecar

        print(check_sidecar(config, args.config))
        return 0
    _configure_logging(config.logging.level)
    install_fast_loop()
    asyncio.run(run_sidecar(config, lambda: load_sidecar_config(args.config), args.config))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from demo.runner import run_demo

    _configure_logging("info")
    return run_demo(
        edge_port=args.edge_port, workdir=args.workdir, otlp_endpoint=args.otlp_endpoint
    )


def _cmd_apikey(args: argparse.Namespace) -> int:
    from meshgate.apikey_command import run_apikey

    return run_apikey(args)


def _cmd_token(args: argparse.Namespace) -> int:
    from meshgate.token_command import run_token

    return run_token(args)


def _worker_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


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
    edge.add_argument(
        "--workers",
        type=_worker_count,
        default=None,
        metavar="N",
        help="processes serving the same ports with SO_REUSEPORT, metrics aggregated "
        "(default: the config's workers, 1)",
    )
    edge.add_argument(
        "--check",
        action="store_true",
        help=CHECK_HELP,
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
    sidecar.add_argument(
        "--check",
        action="store_true",
        help=CHECK_HELP,
    )
    sidecar.set_defaults(func=_cmd_sidecar)

    demo = sub.add_parser(
        "demo",
        help="bring up a demo mesh as local processes (no Docker needed)",
        description=(
            "Start Consul (dev agent), Redis, the edge on :8080, the demo auth service and "
            "the demo services users and orders, each with its own sidecar. Routes need a "
            "token (see the printed instructions) except /auth/*. Ctrl-C stops everything."
        ),
    )
    demo.add_argument("--edge-port", type=int, default=8080, help="edge port (default 8080)")
    demo.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="where generated configs and logs go (default: a new temporary directory)",
    )
    demo.add_argument(
        "--otlp-endpoint",
        default=None,
        metavar="URL",
        help="export every process's spans over OTLP/HTTP to this base URL, e.g. "
        "http://127.0.0.1:4318 (a Jaeger all-in-one), sampling every request",
    )
    demo.set_defaults(func=_cmd_demo)

    apikey = sub.add_parser(
        "apikey",
        help="create, revoke and list API keys (kept in Redis as SHA-256 digests)",
        description=(
            "Manage the API keys the edge accepts (X-API-Key, or 'Authorization: ApiKey'). "
            "Redis holds only their SHA-256 digests, so a new key is printed once. A revoked "
            "key is refused by every edge within its auth.api_keys.cache_ttl (default 5 s)."
        ),
    )
    apikey.add_argument(
        "--redis",
        default=os.environ.get("MESHGATE_REDIS_URL") or "redis://127.0.0.1:6379/0",
        metavar="URL",
        help="Redis holding the keys (default: $MESHGATE_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    apikey.add_argument(
        "--prefix",
        default="meshgate:apikeys:",
        help="Redis key prefix, as the edge's auth.api_keys.key_prefix (default %(default)s)",
    )
    actions = apikey.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create a key: printed once, alone on stdout",
        description="Create an API key; stdout gets the key alone, stderr how to use it.",
    )
    create.add_argument("--consumer", required=True, help="who the key belongs to, e.g. acme")
    create.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    create.add_argument("--plan", default=None, help="the consumer's plan, e.g. gold")
    revoke = actions.add_parser(
        "revoke", help="revoke a key", description="Revoke an API key, given it or its id."
    )
    revoke.add_argument("key", metavar="KEY_OR_ID", help="the key (mgk_...) or its 12-digit id")
    listing = actions.add_parser(
        "list", help="list keys (never the keys themselves)", description="List the API keys."
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    apikey.set_defaults(func=_cmd_apikey)

    token = sub.add_parser(
        "token",
        help="print a demo access token signed with the demo auth service's key",
        description=(
            "Print an access token for quick tries, signed with the demo auth service's key "
            "file (its --key-file; `meshgate demo` prints the path): "
            'curl -H "Authorization: Bearer $(meshgate token --sub alice --role user '
            '--key FILE)" http://127.0.0.1:8080/api/users/echo'
        ),
    )
    token.add_argument("--sub", required=True, help="subject (a user or client name)")
    token.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    token.add_argument("--email", default=None, help="email claim (default: none)")
    token.add_argument(
        "--key",
        default=None,
        metavar="FILE",
        help="the auth service's signing key (default: $MESHGATE_AUTH_KEY_FILE)",
    )
    token.add_argument("--issuer", default="http://auth.demo", help="iss (default %(default)s)")
    token.add_argument("--audience", default="meshgate", help="aud (default %(default)s)")
    token.add_argument("--ttl", type=int, default=900, help="seconds (default %(default)s)")
    token.set_defaults(func=_cmd_token)
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
