"""``meshgate apikey create|revoke|list``: manage the edge's API keys in Redis.

``create`` prints the new key alone on stdout (so ``KEY=$(meshgate apikey
create ...)`` works) and what to do with it on stderr; the key is stored only
as its SHA-256 digest and cannot be shown again. ``list`` never shows keys.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge.auth.apikeys import ApiKeyError, ApiKeyRecord, ApiKeyStore

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_USAGE = 2


def _with_store(args: argparse.Namespace, action: Callable[[ApiKeyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = Redis.from_url(args.redis, socket_timeout=5, socket_connect_timeout=5)
        try:
            return await action(ApiKeyStore(redis, args.prefix))
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _describe(record: ApiKeyRecord) -> dict[str, object]:
    created = datetime.datetime.fromtimestamp(record.created_at, datetime.UTC)
    return {
        "id": record.key_id,
        "consumer": record.consumer,
        "roles": list(record.roles),
        "plan": record.plan,
        "created_at": created.isoformat(timespec="seconds"),
    }


def _create(args: argparse.Namespace) -> int:
    new = _with_store(args, lambda store: store.create(args.consumer, args.role, args.plan))
    print(new.key)
    roles = ", ".join(new.record.roles) or "none"
    print(
        f"API key {new.record.key_id} for consumer {new.record.consumer} "
        f"(roles: {roles}; plan: {new.record.plan or 'none'}).\n"
        "It is shown only this once: store it now. Send it as 'X-API-Key: <key>'.\n"
        f"Revoke it with: meshgate apikey revoke {new.record.key_id}",
        file=sys.stderr,
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    record = _with_store(args, lambda store: store.revoke(args.key))
    if record is None:
        print("meshgate: no such API key (already revoked?)", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"revoked API key {record.key_id} of {record.consumer}; edges refuse it within "
        "their auth.api_keys.cache_ttl (default 5 s)"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    records = [_describe(r) for r in _with_store(args, lambda store: store.list())]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print("no API keys")
        return 0
    print(f"{'ID':<12}  {'CONSUMER':<20}  {'ROLES':<20}  {'PLAN':<10}  CREATED")
    for r in records:
        roles = ",".join(str(x) for x in r["roles"]) if isinstance(r["roles"], list) else ""
        plan = r["plan"] or "-"
        print(
            f"{r['id']!s:<12}  {r['consumer']!s:<20}  {roles:<20}  {plan!s:<10}  {r['created_at']}"
        )
    return 0


_ACTIONS = {"create": _create, "revoke": _revoke, "list": _list}


def run_apikey(args: argparse.Namespace) -> int:
    """Run the ``apikey`` action in ``args.action``; the exit status."""
    try:
        return _ACTIONS[args.action](args)
    except ApiKeyError as exc:
        print(f"meshgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RedisError, OSError) as exc:
        print(f"meshgate: Redis at {args.redis} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
