"""Authentication for the edge scenarios: the demo auth service, tokens and API keys.

``edge+jwt`` runs the demo auth service (its JWKS at a fixed URL) and sends one
token minted with its key file, so after the first request every verification
is a cache hit; ``edge+apikey`` creates one API key in the run's Redis. Both
leave the signed identity token off, to measure authentication itself;
``edge+jwt+idtoken`` adds it. Tokens
and keys are made with the ``meshgate`` command itself (``meshgate token``,
``meshgate apikey create``), as a user would.
"""

from __future__ import annotations

import subprocess
from typing import Any

from bench.context import BenchContext, ScenarioFailed, get_status
from demo.auth_setup import AUDIENCE, ISSUER, auth_service_argv
from demo.processes import free_port


def _key_file(ctx: BenchContext) -> str:
    return str(ctx.path("bench-auth-signing-key.pem"))


def _meshgate(ctx: BenchContext, *args: str) -> str:
    done = subprocess.run(
        [ctx.python, "-m", "meshgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise ScenarioFailed(f"meshgate {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def start_auth_service(ctx: BenchContext) -> int:
    """Start the demo auth service (stopped with the scenario); its port once it answers.

    It also writes the signing key that :func:`jwt_headers` signs the run's token with.
    """
    port = free_port()
    proc = ctx.spawn(
        ctx.unique_name("auth"),
        auth_service_argv(ctx.python, port, _key_file(ctx)),
    )
    ctx.wait_for(
        lambda: get_status(f"http://127.0.0.1:{port}/health") == 200, "auth service", [proc]
    )
    return port


def jwt_edge_config(ctx: BenchContext, *, identity_token: bool = False) -> dict[str, Any]:
    """Start the auth service; the edge's ``auth`` config for it.

    ``identity_token`` off by default, so the scenario measures authentication
    alone; ``edge+jwt+idtoken`` turns it on to show what signing it costs.
    """
    port = start_auth_service(ctx)
    return {
        "auth": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks": {"url": f"http://127.0.0.1:{port}/.well-known/jwks.json"},
            "identity": {"token": {"enabled": identity_token}},
        }
    }


def bearer_passthrough_config(ctx: BenchContext) -> dict[str, Any]:
    """No ``auth`` at the edge; the auth service runs only so the run's token can be signed.

    With :func:`jwt_headers`, the edge forwards the same requests as in
    ``edge+jwt`` without checking them: the difference between the two is what
    authentication itself costs, apart from carrying a bearer token.
    """
    start_auth_service(ctx)
    return {}


def jwt_headers(ctx: BenchContext) -> dict[str, str]:
    """One token for the whole run (``meshgate token``), valid for an hour."""
    token = _meshgate(
        ctx, "token", "--sub", "bench", "--role", "user", "--key", _key_file(ctx), "--ttl", "3600"
    )
    return {"Authorization": f"Bearer {token}"}


def apikey_edge_config(ctx: BenchContext) -> dict[str, Any]:
    """The edge's ``auth`` config for API keys in the run's Redis (no identity token)."""
    return {
        "auth": {
            "api_keys": {"redis_url": ctx.redis.url},
            "identity": {"token": {"enabled": False}},
        }
    }


def apikey_headers(ctx: BenchContext) -> dict[str, str]:
    """One API key (``meshgate apikey create``)."""
    key = _meshgate(
        ctx, "apikey", "--redis", ctx.redis.url, "create", "--consumer", "bench", "--role", "user"
    )
    return {"X-API-Key": key}
