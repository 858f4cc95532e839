"""The demo auth service: issues access tokens, publishes its keys, rotates them, introspects.

Run it with ``python -m demo.auth_service --port 9000 --issuer http://auth.demo
--audience meshgate``. Endpoints:

- ``POST /auth/token`` (``application/x-www-form-urlencoded``, RFC 6749):
  ``grant_type=password`` with ``username`` / ``password``, or
  ``grant_type=client_credentials`` with the client authenticated by HTTP Basic
  or by ``client_id`` / ``client_secret`` form fields. Errors are RFC 6749 §5.2
  JSON (``invalid_request``, ``invalid_client``, ``invalid_grant``,
  ``unsupported_grant_type``).
- ``GET /.well-known/jwks.json``: the public keys, ``Cache-Control: public, max-age=N``.
- ``POST /auth/rotate``: needs a bearer token of a caller with role ``admin``.
  A new key signs from then on; the previous public key stays in the JWKS for
  the rotation grace period so tokens it signed keep verifying until they expire.
- ``POST /auth/introspect`` (RFC 7662): needs HTTP Basic of a client with role
  ``introspect``; answers ``{"active": false}`` for any token that is not a
  valid, unexpired token of this service.
- ``GET /health``; ``GET /admin/stats``: requests served per endpoint
  (``jwks_fetches``, ``tokens_issued``, ``introspections``) and the active kid.

Keys: by default a new key at every start. ``--key-file FILE`` signs with the
key in FILE (created if missing) under its RFC 7638 thumbprint as kid, so
``meshgate token --key FILE`` mints tokens this service's JWKS verifies.

Demo identities (deliberately public; this is a demo, never a deployment):

- user ``alice``, password ``wonderland``, roles ``user``
- user ``bob``, password ``builder``, roles ``admin``
- client ``reporting``, secret ``reporting-secret``, roles ``service``
- client ``edge``, secret ``edge-secret``, roles ``introspect`` (may call introspection)

Tokens carry ``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``,
``roles`` and, for users, ``email``; for clients, ``client_id``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SigningPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SIGNING_ALGORITHMS = ("ES256", "RS256")
MAX_TOKEN_CHARS = 8 * 1024

# Low on purpose: the demo hashes on the event loop. Real services use a slow KDF off-loop.
_PBKDF2_ROUNDS = 20_000


# ---------------------------------------------------------------- identities


@dataclass(frozen=True, slots=True)
class Principal:
    """A user or machine client: name, salted secret hash, roles, optional email."""

    name: str
    salt: bytes = field(repr=False)
    secret_hash: bytes = field(repr=False)
    roles: tuple[str, ...]
    email: str | None = None


def _hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, _PBKDF2_ROUNDS)


def make_principal(
    name: str, secret: str, roles: Sequence[str], email: str | None = None
) -> Principal:
    """A Principal whose secret is stored only as a salted PBKDF2 hash."""
    salt = secrets.token_bytes(16)
    return Principal(name, salt, _hash_secret(secret, salt), tuple(roles), email)


_UNKNOWN = make_principal("", secrets.token_urlsafe(16), ())


def authenticate(principals: Mapping[str, Principal], name: str, secret: str) -> Principal | None:
    """The principal if ``secret`` is right, else None.

    An unknown name is checked against a dummy principal so both failures take
    the same time and do not reveal which names exist.
    """
    principal = principals.get(name)
    candidate = principal or _UNKNOWN
    ok = hmac.compare_digest(candidate.secret_hash, _hash_secret(secret, candidate.salt))
    return principal if ok and principal is not None else None


def demo_users() -> dict[str, Principal]:
    """alice/wonderland (user) and bob/builder (admin)."""
    return {
        "alice": make_principal("alice", "wonderland", ["user"], "alice@example.com"),
        "bob": make_principal("bob", "builder", ["admin"], "bob@example.com"),
    }


def demo_clients() -> dict[str, Principal]:
    """reporting/reporting-secret (service) and edge/edge-secret (introspect)."""
    return {
        "reporting": make_principal("reporting", "reporting-secret", ["service"]),
        "edge": make_principal("edge", "edge-secret", ["introspect"]),
    }


# ---------------------------------------------------------------- keys and tokens


def algorithm_for_key(private_key: SigningPrivateKey) -> str:
    """ES256 for a P-256 key, RS256 for an RSA key; ValueError otherwise."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("only P-256 EC and RSA keys are supported")


def generate_private_key(algorithm: str) -> SigningPrivateKey:
    """A fresh P-256 key for ES256 or 2048-bit RSA key for RS256."""
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported signing algorithm {algorithm!r}")


def public_jwk(private_key: SigningPrivateKey, kid: str) -> dict[str, Any]:
    """The public half of ``private_key`` as a JWK with kid, alg and use=sig."""
    public_key = private_key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    jwk.update({"kid": kid, "alg": algorithm_for_key(private_key), "use": "sig"})
    return jwk


def mint_token(
    private_key: SigningPrivateKey,
    kid: str,
    sub: str,
    roles: Sequence[str],
    iss: str,
    aud: str,
    ttl: float,
    email: str | None = None,
    *,
    client_id: str | None = None,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an access token with ``private_key`` (algorithm from the key type).

    Claims: iss, sub, aud, iat and nbf (= now), exp (= now + ttl), a random jti,
    roles, and email / client_id when given; ``extra_claims`` are added last and
    may override. Meant for the service and for ``meshgate token``.
    """
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(ttl),
        "jti": uuid.uuid4().hex,
        "roles": list(roles),
    }
    if email is not None:
        claims["email"] = email
    if client_id is not None:
        claims["client_id"] = client_id
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(
        claims,
        private_key,
        algorithm=algorithm_for_key(private_key),
        headers={"kid": kid, "typ": "JWT"},
    )


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with its kid; ``retired_at`` is set once a newer key signs."""

    kid: str
    private_key: SigningPrivateKey = field(repr=False)
    retired_at: float | None = None

    @property
    def algorithm(self) -> str:
        return algorithm_for_key(self.private_key)


def new_signing_key(algorithm: str) -> SigningKey:
    """A fresh key with a random kid of 16 base64url characters."""
    return SigningKey(kid=secrets.token_urlsafe(12), private_key=generate_private_key(algorithm))


def key_id_for(private_key: SigningPrivateKey) -> str:
    """The RFC 7638 thumbprint of the public key: the same kid for the same key file."""
    jwk = public_jwk(private_key, "")
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def load_key_file(path: str | Path) -> SigningPrivateKey:
    """The P-256 or RSA private key in an unencrypted PEM file (OSError, ValueError)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("not a P-256 EC or RSA private key")
    algorithm_for_key(key)  # raises ValueError for other curves
    return key


def load_or_create_key_file(path: str | Path, algorithm: str = "ES256") -> SigningPrivateKey:
    """The key in ``path``; if the file does not exist, a new key written there (mode 0600).

    This is how the demo shares its signing key with ``meshgate token``.
    """
    file = Path(path)
    if file.exists():
        return load_key_file(file)
    key = generate_private_key(algorithm)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def signing_key_from_file(private_key: SigningPrivateKey) -> SigningKey:
    """A SigningKey for a file's key, with its thumbprint as kid."""
    return SigningKey(kid=key_id_for(private_key), private_key=private_key)


class KeyRing:
    """The active signing key plus retired keys still published for ``grace_s``."""

    def __init__(
        self,
        algorithm: str,
        grace_s: float,
        clock: Callable[[], float],
        initial: SigningKey | None = None,
    ) -> None:
        self._algorithm = algorithm
        self._grace_s = grace_s
        self._clock = clock
        self._active = initial or new_signing_key(algorithm)
        self._retired: list[SigningKey] = []

    @property
    def active(self) -> SigningKey:
        return self._active

    def rotate(self) -> tuple[SigningKey, SigningKey]:
        """Make a new key active; return (new, retired). The retired key stays published."""
        retired = SigningKey(self._active.kid, self._active.private_key, self._clock())
        self._retired.append(retired)
        self._active = new_signing_key(self._algorithm)
        return self._active, retired

    def published(self) -> list[SigningKey]:
        """The active key and every retired key still inside its grace period."""
        now = self._clock()
        self._retired = [
            key
            for key in self._retired
            if key.retired_at is not None and now < key.retired_at + self._grace_s
        ]
        return [self._active, *self._retired]

    def find(self, kid: str) -> SigningKey | None:
        """The published key with ``kid``, or None."""
        return next((key for key in self.published() if key.kid == kid), None)

    def jwks(self) -> dict[str, Any]:
        """The JWKS document of the published keys."""
        return {"keys": [public_jwk(key.private_key, key.kid) for key in self.published()]}


# ---------------------------------------------------------------- the application


@dataclass(frozen=True, slots=True)
class AuthServiceSettings:
    """Settings of the demo auth service, validated on construction (ValueError).

    ``rotation_grace_s`` must cover ``token_ttl_s``: a retired key has to stay
    published until the last token it signed has expired. The default grace
    also covers one JWKS max-age for edges that cached the set.
    """

    issuer: str
    audience: str
    algorithm: str = "ES256"
    token_ttl_s: int = 900
    jwks_max_age_s: int = 300
    rotation_grace_s: float | None = None
    users: Mapping[str, Principal] = field(default_factory=demo_users)
    clients: Mapping[str, Principal] = field(default_factory=demo_clients)

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("issuer and audience are required")
        if self.algorithm not in SIGNING_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(SIGNING_ALGORITHMS)}")
        if self.token_ttl_s <= 0 or self.jwks_max_age_s < 0:
            raise ValueError("token_ttl_s must be positive and jwks_max_age_s non-negative")
        if self.rotation_grace_s is not None and self.rotation_grace_s < self.token_ttl_s:
            raise ValueError("rotation_grace_s must be at least token_ttl_s")

    @property
    def grace_s(self) -> float:
        """The effective rotation grace period."""
        if self.rotation_grace_s is not None:
            return self.rotation_grace_s
        return float(self.token_ttl_s + self.jwks_max_age_s)


SETTINGS = web.AppKey("settings", AuthServiceSettings)
KEY_RING = web.AppKey("key_ring", KeyRing)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
STATS: web.AppKey[Counter[str]] = web.AppKey("stats")

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    """An RFC 6749 §5.2 error; 401s carry the Basic challenge (§5.2, invalid_client)."""
    headers = dict(_NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="meshgate-auth"'
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


def _bearer_error(status: int, error: str, description: str) -> web.Response:
    """An RFC 6750 error for the bearer-protected rotate endpoint."""
    challenge = f'Bearer realm="meshgate-auth", error="{error}", error_description="{description}"'
    return web.json_response(
        {"error": error, "error_description": description},
        status=status,
        headers={"WWW-Authenticate": challenge},
    )


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(id, secret) from an HTTP Basic Authorization header, or None if there is none.

    Raises ValueError for a Basic header that does not decode.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("malformed Basic credentials") from exc
    name, sep, secret = decoded.partition(":")
    if not sep:
        raise ValueError("malformed Basic credentials")
    # RFC 6749 §2.3.1: id and secret are form-urlencoded inside the Basic credentials.
    return unquote_plus(name), unquote_plus(secret)


def _client_credentials(request: web.Request, form: Mapping[str, Any]) -> tuple[str, str] | None:
    """Client credentials from Basic or from the form (RFC 6749 §2.3.1), never both."""
    basic = _basic_credentials(request)
    in_form = "client_id" in form or "client_secret" in form
    if basic is not None and in_form:
        raise ValueError("client credentials given twice")
    if basic is not None:
        return basic
    if in_form:
        return str(form.get("client_id", "")), str(form.get("client_secret", ""))
    return None


async def _form(request: web.Request) -> Mapping[str, Any] | None:
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    return await request.post()


def _decode_own_token(app: web.Application, token: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token signed by a published key, else None."""
    settings, ring, now = app[SETTINGS], app[KEY_RING], app[CLOCK]()
    if len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = ring.find(kid) if isinstance(kid, str) else None
        if key is None:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[key.algorithm],
            audience=settings.audience,
            issuer=settings.issuer,
            # Time claims are checked below with the app's clock.
            options={
                "require": ["exp", "iat", "sub"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError:
        return None
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        return None
    return claims if nbf <= now < exp else None


async def handle_token(request: web.Request) -> web.Response:
    """POST /auth/token: the password and client_credentials grants."""
    settings, ring, now = request.app[SETTINGS], request.app[KEY_RING], request.app[CLOCK]()
    form = await _form(request)
    if form is None:
        return _oauth_error(
            400, "invalid_request", "body must be application/x-www-form-urlencoded"
        )
    grant_type = form.get("grant_type")
    key = ring.active

    if grant_type == "password":
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            return _oauth_error(400, "invalid_request", "username and password are required")
        user = authenticate(settings.users, username, password)
        if user is None:
            return _oauth_error(400, "invalid_grant", "invalid username or password")
        token = mint_token(
            key.private_key,
            key.kid,
            user.name,
            user.roles,
            settings.issuer,
            settings.audience,
            settings.token_ttl_s,
            user.email,
            now=now,
        )
    elif grant_type == "client_credentials":
        try:
            credentials = _client_credentials(request, form)
        except ValueError as exc:
            return _oauth_error(400, "invalid_request", str(exc))
        if credentials is None:
            return _oauth_error(401, "invalid_client", "client authentication required")
        client = authenticate(settings.clients, *credentials)
        if client is None:
            return _oauth_error(401, "invalid_client", "client authentication failed")
        token = mint_token(
            key.private_key,
            key.kid,
            client.name,
            client.roles,
            settings.issuer,
            settings.audience,
            settings.token_ttl_s,
            client_id=client.name,
            now=now,
        )
    elif grant_type is None:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    else:
        return _oauth_error(400, "unsupported_grant_type", "use password or client_credentials")

    request.app[STATS]["tokens_issued"] += 1
    body = {"access_token": token, "token_type": "Bearer", "expires_in": settings.token_ttl_s}
    return web.json_response(body, headers=_NO_STORE)


async def handle_jwks(request: web.Request) -> web.Response:
    """GET /.well-known/jwks.json: published public keys, cacheable for max-age."""
    settings = request.app[SETTINGS]
    request.app[STATS]["jwks_fetches"] += 1
    return web.json_response(
        request.app[KEY_RING].jwks(),
        headers={"Cache-Control": f"public, max-age={settings.jwks_max_age_s}"},
    )


async def handle_rotate(request: web.Request) -> web.Response:
    """POST /auth/rotate: admin only; a new kid signs, the old one stays published."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return web.json_response(
            {"error": "unauthorized", "error_description": "missing bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="meshgate-auth"'},
        )
    claims = _decode_own_token(request.app, token.strip())
    if claims is None:
        return _bearer_error(401, "invalid_token", "token is not valid")
    roles = claims.get("roles")
    if not isinstance(roles, list) or "admin" not in roles:
        return _bearer_error(403, "insufficient_scope", "admin role required")
    ring = request.app[KEY_RING]
    new, retired = ring.rotate()
    assert retired.retired_at is not None  # set by rotate()
    return web.json_response(
        {
            "kid": new.kid,
            "retired_kid": retired.kid,
            "retired_published_until": retired.retired_at + request.app[SETTINGS].grace_s,
        },
        headers=_NO_STORE,
    )


async def handle_introspect(request: web.Request) -> web.Response:
    """POST /auth/introspect (RFC 7662): only for clients with role ``introspect``."""
    settings = request.app[SETTINGS]
    try:
        credentials = _basic_credentials(request)
    except ValueError as exc:
        return _oauth_error(400, "invalid_request", str(exc))
    client = authenticate(settings.clients, *credentials) if credentials else None
    if client is None or "introspect" not in client.roles:
        return _oauth_error(401, "invalid_client", "introspection requires an authorized client")
    form = await _form(request)
    token = form.get("token") if form is not None else None
    if not isinstance(token, str) or not token:
        return _oauth_error(400, "invalid_request", "token is required")

    request.app[STATS]["introspections"] += 1
    claims = _decode_own_token(request.app, token)
    if claims is None:
        return web.json_response({"active": False}, headers=_NO_STORE)
    answer: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in ("sub", "iss", "aud", "exp", "iat", "nbf", "jti", "roles", "email", "client_id"):
        if name in claims:
            answer[name] = claims[name]
    if "client_id" not in claims:
        answer["username"] = claims["sub"]
    return web.json_response(answer, headers=_NO_STORE)


async def handle_stats(request: web.Request) -> web.Response:
    """GET /admin/stats: requests served per endpoint (JWKS fetches, tokens, ...)."""
    stats = request.app[STATS]
    return web.json_response({**stats, "kid": request.app[KEY_RING].active.kid})


async def handle_health(request: web.Request) -> web.Response:
    """GET /health: the service is up and has an active key."""
    return web.json_response({"status": "ok", "kid": request.app[KEY_RING].active.kid})


def create_app(
    settings: AuthServiceSettings,
    *,
    clock: Callable[[], float] = time.time,
    signing_key: SigningKey | None = None,
) -> web.Application:
    """The auth service as an aiohttp application.

    Each app has its own key ring, starting with ``signing_key`` when given
    (e.g. from :func:`load_or_create_key_file`) or a fresh key.
    """
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[KEY_RING] = KeyRing(settings.algorithm, settings.grace_s, clock, signing_key)
    app[STATS] = Counter({"jwks_fetches": 0, "tokens_issued": 0, "introspections": 0})
    app.router.add_post("/auth/token", handle_token)
    app.router.add_get("/.well-known/jwks.json", handle_jwks)
    app.router.add_post("/auth/rotate", handle_rotate)
    app.router.add_post("/auth/introspect", handle_introspect)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/admin/stats", handle_stats)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m demo.auth_service --port N --issuer URL --audience NAME``."""
    parser = argparse.ArgumentParser(
        prog="python -m demo.auth_service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--algorithm", choices=SIGNING_ALGORITHMS, default="ES256")
    parser.add_argument("--token-ttl", type=int, default=900, help="seconds (default 900)")
    parser.add_argument("--jwks-max-age", type=int, default=300, help="seconds (default 300)")
    parser.add_argument(
        "--key-file",
        default=None,
        metavar="FILE",
        help="PEM private key to sign with (created if missing); `meshgate token --key FILE` "
        "mints tokens with the same key. Default: a new key at every start",
    )
    parser.add_argument(
        "--rotation-grace",
        type=float,
        default=None,
        help="seconds a retired key stays published (default ttl + max-age)",
    )
    args = parser.parse_args(argv)
    try:
        settings = AuthServiceSettings(
            issuer=args.issuer,
            audience=args.audience,
            algorithm=args.algorithm,
            token_ttl_s=args.token_ttl,
            jwks_max_age_s=args.jwks_max_age,
            rotation_grace_s=args.rotation_grace,
        )
    except ValueError as exc:
        parser.error(str(exc))
    signing_key = None
    if args.key_file is not None:
        try:
            signing_key = signing_key_from_file(
                load_or_create_key_file(args.key_file, args.algorithm)
            )
        except (OSError, ValueError) as exc:
            parser.error(f"--key-file {args.key_file}: {exc}")
    app = create_app(settings, signing_key=signing_key)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
