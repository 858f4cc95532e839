"""The admin listener's bearer token: where it is read from, and how a presented one is checked.

The token is never written in the configuration file (which gets committed, shown
and diffed): ``admin.token_file`` names a file holding it (a Kubernetes or Docker
secret, mode 0600), or ``admin.token_env`` an environment variable. Either is read
when the configuration is loaded, at start and on each reload, so a bad one is a
configuration error like any other (:class:`TokenUnavailable` names the key and
the problem; :class:`mesh.config.sections.AdminConfig` turns it into one).

A token is RFC 6750's ``b64token`` (letters, digits, ``-._~+/``, then ``=``
padding), so that it travels in ``Authorization: Bearer <token>`` exactly as
written, of at least :data:`MIN_LENGTH` characters; whitespace around it (the
newline ``echo`` leaves) is not part of it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIN_LENGTH = 16
"""Shortest token accepted: 16 random characters (``openssl rand -hex 32`` gives 64)."""

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""What ``admin.token_env`` may name: a portable environment variable name."""


class TokenUnavailable(Exception):
    """The token cannot be had from the key ``key`` (``token_file`` or ``token_env``);
    ``problem`` says why, naming the file or the variable."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class AdminToken:
    """The token every protected admin request must present, and where it came from
    (``origin``: the file or the variable, fit for logs; the token itself is never
    printed, not even by ``repr``)."""

    origin: str
    secret: bytes = field(repr=False)
    _digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_digest", hashlib.sha256(self.secret).digest())

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is the token, in time that does not depend on how much of
        it is right: digests of equal length are compared with ``hmac.compare_digest``,
        so not even the token's length shows in the timing."""
        try:
            candidate = presented.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(hashlib.sha256(candidate).digest(), self._digest)


def read_token_file(path: str) -> AdminToken:
    """The token held in the file at ``path``; raises :class:`TokenUnavailable` (key
    ``token_file``) when it cannot be read, is empty or is no valid token."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TokenUnavailable("token_file", f"cannot read {path}: {exc.strerror or exc}") from None
    return AdminToken(path, _checked(raw, "token_file", f"the file {path}"))


def read_token_env(name: str, environ: Mapping[str, str] | None = None) -> AdminToken:
    """The token held in the environment variable ``name`` (of ``environ``, the process's
    environment by default); raises :class:`TokenUnavailable` (key ``token_env``) when it
    is unset, empty or no valid token."""
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        raise TokenUnavailable("token_env", f"the environment variable {name} is not set")
    return AdminToken(f"${name}", _checked(value.encode(), "token_env", f"${name}"))


def _checked(raw: bytes, key: str, where: str) -> bytes:
    token = raw.strip()
    if not token:
        raise TokenUnavailable(key, f"{where} is empty")
    if not _B64TOKEN.fullmatch(token.decode("ascii", "replace")):
        raise TokenUnavailable(
            key,
            f"{where} holds characters a bearer token cannot have "
            "(letters, digits and -._~+/ then '=' only)",
        )
    if len(token) < MIN_LENGTH:
        raise TokenUnavailable(
            key,
            f"{where} holds {len(token)} characters; a token needs at least {MIN_LENGTH} "
            "(e.g. openssl rand -hex 32)",
        )
    return token
