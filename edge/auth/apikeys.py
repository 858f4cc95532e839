"""API keys: their format, and their store in Redis, which never holds a key in clear.

A key looks like ``mgk_<id>_<secret>``: ``id`` is 12 hex digits (public: it names
the key in listings and revocations), ``secret`` 32 random bytes in base64url.
The ``mgk_`` prefix lets secret scanners recognise leaked keys.

Redis layout, under a prefix (default ``meshgate:apikeys:``):

- ``<prefix>digest:<sha256 hex of the whole key>``: a hash with ``id``,
  ``consumer``, ``roles`` (JSON list), ``plan``, ``created_at``; the edge's look-up;
- ``<prefix>index``: a hash from id to that digest, for listing and revoking by id.

A plain SHA-256 suffices (no slow KDF) because the secret is 256 random bits:
nothing can be guessed, so nothing needs slowing down.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

KEY_PREFIX = "mgk"
DEFAULT_REDIS_PREFIX = "meshgate:apikeys:"

_KEY = re.compile(r"mgk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}\Z")
_ID = re.compile(r"[0-9a-f]{12}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")


class ApiKeyError(ValueError):
    """Invalid input to the store (a consumer, role or plan name); the message says which."""


def key_id_of(key: str) -> str | None:
    """The id inside a well-formed key, None for anything else (checked before any look-up)."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def is_key_id(text: str) -> bool:
    """True if ``text`` has the shape of a key id."""
    return bool(_ID.match(text))


def key_digest(key: str) -> str:
    """The hex SHA-256 under which a key is stored."""
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new random key and its id."""
    key_id = secrets.token_hex(6)
    return f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}", key_id


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What the store knows about a key: never the key itself."""

    key_id: str
    consumer: str
    roles: tuple[str, ...]
    plan: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created key: ``key`` is shown once and stored nowhere."""

    key: str
    record: ApiKeyRecord


def _check_name(kind: str, value: str) -> None:
    if not _NAME.match(value):
        raise ApiKeyError(
            f"{kind} {value!r}: use 1 to 128 letters, digits and . _ : @ - "
            "(starting with a letter or digit)"
        )


class ApiKeyStore:
    """API keys in Redis (see the module docstring for the layout).

    The Redis client is borrowed: the caller closes it. Redis errors propagate
    as ``redis.exceptions.RedisError``.
    """

    def __init__(self, redis: Redis, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix
        self._index = f"{prefix}index"

    def _digest_key(self, digest: str) -> str:
        return f"{self._prefix}digest:{digest}"

    async def create(
        self,
        consumer: str,
        roles: Sequence[str] = (),
        plan: str | None = None,
        *,
        now: float | None = None,
    ) -> NewApiKey:
        """Store a new key for ``consumer``; raises ApiKeyError for invalid names."""
        _check_name("consumer", consumer)
        for role in roles:
            _check_name("role", role)
        if plan is not None:
            _check_name("plan", plan)
        key, key_id = generate_key()
        record = ApiKeyRecord(
            key_id, consumer, tuple(dict.fromkeys(roles)), plan, time.time() if now is None else now
        )
        digest = key_digest(key)
        fields: dict[FieldT, EncodableT] = {
            "id": key_id,
            "consumer": consumer,
            "roles": json.dumps(list(record.roles)),
            "plan": plan or "",
            "created_at": repr(record.created_at),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._digest_key(digest), mapping=fields)
            pipe.hset(self._index, key_id, digest)
            await pipe.execute()
        return NewApiKey(key, record)

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        """The record of a live key, None for a malformed, unknown or revoked one."""
        if key_id_of(key) is None:
            return None
        fields = await self._redis.hgetall(self._digest_key(key_digest(key)))
        return _record(fields)

    async def revoke(self, key_or_id: str) -> ApiKeyRecord | None:
        """Revoke by key or by id; the record revoked, or None if there was none."""
        if key_id_of(key_or_id) is not None:
            digest: str | None = key_digest(key_or_id)
        elif is_key_id(key_or_id):
            raw = await self._redis.hget(self._index, key_or_id)
            digest = _text(raw) if raw is not None else None
        else:
            raise ApiKeyError("expected an API key (mgk_...) or a key id (12 hex digits)")
        if digest is None:
            return None
        record = _record(await self._redis.hgetall(self._digest_key(digest)))
        if record is None:
            return None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._digest_key(digest))
            pipe.hdel(self._index, record.key_id)
            await pipe.execute()
        return record

    async def list(self) -> list[ApiKeyRecord]:
        """Every live key's record, oldest first (no secrets, no digests)."""
        index = await self._redis.hgetall(self._index)
        if not index:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in index.values():
                pipe.hgetall(self._digest_key(_text(digest)))
            results = await pipe.execute()
        records = [r for r in (_record(fields) for fields in results) if r is not None]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(fields: dict[bytes | str, bytes | str]) -> ApiKeyRecord | None:
    if not fields:
        return None
    data = {_text(k): _text(v) for k, v in fields.items()}
    try:
        roles = json.loads(data["roles"])
        return ApiKeyRecord(
            key_id=data["id"],
            consumer=data["consumer"],
            roles=tuple(str(r) for r in roles),
            plan=data.get("plan") or None,
            created_at=float(data.get("created_at", "0")),
        )
    except (KeyError, ValueError, TypeError):
        return None
