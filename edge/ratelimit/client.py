"""Build the Redis client the limiter uses: one Redis or a Redis Cluster, by configuration.

The limiter is the one that decides how long to wait (its per-batch timeout)
and what to do on failure (probe in the background), so the client is built
not to retry and not to wait long on its own: a retry with backoff inside
redis-py would only hold requests past the limiter's deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

RedisClient = Redis | RedisCluster
"""Either kind of client; the limiter works the same against both."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the limiter's Redis is.

    ``url``: ``redis://[user:password@]host:port[/db]`` (``rediss://`` for TLS);
    for a cluster, any one node (the rest is discovered). ``cluster``: use
    redis-py's cluster client. ``socket_timeout_s`` bounds connects and reads
    as a backstop; the limiter's own, shorter timeout is what requests see.
    """

    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False
    socket_timeout_s: float = 1.0
    max_connections: int = 64

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://")):
            raise ValueError(f"redis url must start with redis:// or rediss://, got {self.url!r}")
        if not self.socket_timeout_s > 0:
            raise ValueError(f"socket_timeout_s must be positive, got {self.socket_timeout_s!r}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections!r}")


def create_redis_client(settings: RedisSettings) -> RedisClient:
    """A client for ``settings``, not yet connected (it connects on first use).

    The caller owns it and closes it with ``await client.aclose()``.
    """
    common: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.socket_timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": settings.max_connections,
    }
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **common)
    return Redis.from_url(settings.url, **common)
