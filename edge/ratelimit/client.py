"""Build the Redis client the limiter uses: one Redis or a Redis Cluster, by configuration.

The limiter is the one that decides how long to wait (its per-batch timeout)
and what to do on failure (probe in the background), so the client is built
not to retry and not to wait long on its own: a retry with backoff inside
redis-py would only hold requests past the limiter's deadline.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

RedisClient = Redis | RedisCluster
"""Either kind of client; the limiter works the same against both."""

# No CLIENT SETINFO on connect: redis-py >= 7 says so with driver_info, older with lib_name.
_NO_CLIENT_INFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


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


async def drop_idle_connections(client: RedisClient) -> None:
    """Close every idle pooled connection of ``client`` (every node's, on a cluster).

    After an outage the pool may hold connections to a Redis that is gone:
    redis-py 8 does not always notice a socket the server closed while idle
    (its check is skipped when maintenance notifications are on), so each of
    them would fail once after Redis is back. Connections in use are left
    alone; new ones are opened on demand.
    """
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            await node.disconnect_free_connections()
    else:
        await client.connection_pool.disconnect(inuse_connections=False)


def create_redis_client(settings: RedisSettings) -> RedisClient:
    """A client for ``settings``, not yet connected (it connects on first use).

    The caller owns it and closes it with ``await client.aclose()``.
    """
    common: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.socket_timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": settings.max_connections,
        # A new connection must be cheap: after an outage every batch may need one,
        # inside the limiter's 50 ms. RESP3's HELLO and the CLIENT SETINFO
        # announcements cost round trips (and, with RESP3, redis-py 8's
        # maintenance notifications skip its check for dead pooled connections).
        "protocol": 2,
        **_NO_CLIENT_INFO,
    }
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **common)
    return Redis.from_url(settings.url, **common)
