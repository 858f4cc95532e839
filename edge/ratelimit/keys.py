"""Redis key names of token buckets.

Format: ``<prefix>:{<tag>}:<policy>:<key>``, e.g. ``mg:rl:{9f86d081884c7d65}:per-user:alice``.

The part in braces is Redis Cluster's hash tag: only it decides the slot, so
all buckets with the same tag live on one node and one script can touch them
atomically. The tag is a hash of the limit's partition (see
:class:`~edge.ratelimit.limiter.LimitRequest`), or of ``<policy>:<key>`` when
it has none, so:

- one bucket always has the same Redis key, whichever request touches it,
  because the partition is a function of the bucket;
- the per-caller limits of one request share a partition (the caller's
  identity), hence a slot, hence one atomic script even on Cluster.

Hashing the partition keeps tags short and free of braces (a ``}`` inside a raw
identity would end the tag early, an empty tag would hash the whole key). The
readable policy and key follow the tag for whoever looks at Redis.
"""

from __future__ import annotations

from hashlib import blake2b

from redis.crc import key_slot

from edge.ratelimit.limiter import LimitRequest

DEFAULT_PREFIX = "mg:rl"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is usable in front of the hash tag, else raise ValueError."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(f"key prefix must be non-empty and free of braces, got {prefix!r}")
    return prefix


def partition_tag(partition: str) -> str:
    """16 hex digits naming ``partition``'s slot; the same partition always gives the same tag."""
    return blake2b(partition.encode(), digest_size=8).hexdigest()


def bucket_key(limit: LimitRequest, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis key of ``limit``'s bucket (see the module docstring).

    Not cached here: the Redis limiter asks once per LimitRequest and keeps the
    answer, so a cache would only add its bookkeeping to every new bucket.
    """
    name = limit.policy.name
    key = limit.key
    partition = limit.partition
    tag = partition_tag(partition if partition is not None else f"{name}:{key}")
    return f"{prefix}:{{{tag}}}:{name}:{key}"


def slot_of(key: str | bytes) -> int:
    """The Redis Cluster slot of a key built by :func:`bucket_key` (as text or encoded)."""
    return key_slot(key if isinstance(key, bytes) else key.encode())
