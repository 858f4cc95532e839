"""How the demo mesh is secured: its keys, and the auth settings of the edge and sidecars.

Two key pairs, both generated into the demo's work directory on first use:

- ``auth-signing-key.pem``: the demo auth service signs access tokens with it
  (``--key-file``) and publishes its public half in its JWKS; ``meshgate token
  --key <it>`` mints tokens the edge accepts;
- ``edge-identity.pem`` / ``edge-identity.pub.pem``: the edge signs the
  internal identity token with the first; every sidecar checks it with the
  second and refuses identity headers the edge did not sign.

The edge finds the auth service in Consul (``jwks.service: auth``), requires
a token on every route except ``/auth/*`` and accepts API keys kept in the
demo's Redis.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.auth_service import key_id_for, load_or_create_key_file, mint_token
from mesh.identity.keys import (
    generate_signing_key,
    load_signing_key,
    public_key_pem,
    signing_key_pem,
)

ISSUER = "http://auth.demo"
AUDIENCE = "meshgate"
AUTH_SERVICE = "auth"
AUTH_ROUTE: dict[str, Any] = {"prefix": "/auth", "service": AUTH_SERVICE, "auth": "none"}
"""The auth service's own endpoints (token, rotate, introspect) are public."""


@dataclass(frozen=True)
class DemoAuth:
    """The demo's key files (see the module docstring)."""

    auth_key: Path
    edge_identity_key: Path
    edge_identity_public_key: Path

    @classmethod
    def prepare(cls, workdir: Path) -> DemoAuth:
        """The key files in ``workdir``, created if missing."""
        auth_key = workdir / "auth-signing-key.pem"
        load_or_create_key_file(auth_key)
        private, public = workdir / "edge-identity.pem", workdir / "edge-identity.pub.pem"
        if not private.exists():
            private.write_bytes(signing_key_pem(generate_signing_key("ES256")))
            private.chmod(0o600)
        public.write_bytes(public_key_pem(load_signing_key(private.read_bytes()).public_key()))
        return cls(auth_key, private, public)

    def auth_service_argv(self, port: int) -> list[str]:
        """The command line of the demo auth service on ``port``."""
        return auth_service_argv(sys.executable, port, str(self.auth_key))

    def edge_auth(self, redis_url: str) -> dict[str, Any]:
        """The edge's ``auth`` section."""
        return {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks": {"service": AUTH_SERVICE},
            "api_keys": {"redis_url": redis_url},
            "identity": {"token": {"signing_key_file": str(self.edge_identity_key)}},
        }

    def sidecar_identity(self) -> dict[str, Any]:
        """Every sidecar's ``identity`` section."""
        return {"edge_public_key_file": str(self.edge_identity_public_key), "require": True}

    def token(self, sub: str = "alice", roles: tuple[str, ...] = ("user",)) -> str:
        """A token as ``meshgate token`` mints it, for readiness checks."""
        key = load_or_create_key_file(self.auth_key)
        return mint_token(key, key_id_for(key), sub, roles, ISSUER, AUDIENCE, 300)


def answers_with_token(url: str, token: str, timeout: float = 1.0) -> bool:
    """True when GET ``url`` with ``token`` as bearer answers 2xx."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def auth_service_argv(python: str, port: int, key_file: str) -> list[str]:
    """The command line of the demo auth service on ``port``, signing with ``key_file``."""
    return [
        python,
        "-m",
        "demo.auth_service",
        "--port",
        str(port),
        "--issuer",
        ISSUER,
        "--audience",
        AUDIENCE,
        "--key-file",
        key_file,
    ]
