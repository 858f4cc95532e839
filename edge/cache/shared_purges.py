"""Purges shared between edges through a Redis stream (``cache.shared_purges``).

Each edge keeps its own store, so a purge made on one edge's admin listener would
leave the others serving what was purged. With ``shared_purges`` configured, a purge
made for every worker of an edge (``POST /cache/purge``) is also appended to a Redis
stream (``XADD``, the stream capped at about ``max_length`` entries), and every worker
of every edge reads that stream (``XREAD``, every :data:`POLL_S` while nothing is new)
and carries out the purges other edges appended. One edge's purge thus reaches every
edge sharing the stream, the way Fastly's and Varnish farms' purges do.

Why a stream rather than publish/subscribe: a reader keeps the id of the last entry
it read and goes on from there after losing its connection, so a purge appended while
an edge was cut off from Redis is still carried out when it is back (as long as the
stream still holds it: ``max_length`` entries). A reader starts with the entries
appended since its process started (stream ids are Redis's clock in milliseconds;
:data:`CLOCK_MARGIN_MS` earlier, for clocks that differ), so an edge that could not
reach Redis from its start carries out what was appended meanwhile too. An older
purge read again costs a miss, never a stale answer.

A purge that cannot be appended (Redis down, slower than ``timeout``) has still been
carried out on this edge; the admin answer (:func:`sharing`, wrapped around
``POST /cache/purge``) is then a 503 problem that says so, with
the local count, so whoever purged knows the other edges were not told and can ask
again. Entries each edge appended itself are skipped when read back (its workers
carried the purge out already). Entries that do not say a purge are counted and
skipped, never raised: another program may write to the stream.

Metrics: ``meshgate_cache_shared_purges_total{outcome}``: ``published``,
``unpublished`` (the append failed), ``applied`` (another edge's, carried out),
``invalid``; ``meshgate_cache_shared_purge_read_errors_total``: failed reads (each
followed by a pause and a new attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from edge.cache.admin import Purge, parse_purge
from mesh.admin import AdminHandler, json_response
from mesh.admin_workers import QUERY as WORKERS_QUERY
from mesh.admin_workers import THIS as THIS_WORKER
from mesh.http.problem import problem_response

log = logging.getLogger(__name__)

FIELD_PURGE = "purge"
"""The entry's field holding the purge, as the JSON body of ``POST /cache/purge``."""
FIELD_ORIGIN = "origin"
"""The entry's field naming the edge that appended it (:func:`node_id`)."""
POLL_S = 0.25
"""Pause between reads that found nothing new: how late a purge reaches the other edges
at most, besides the round trips.

Not a blocking ``XREAD``: redis-py does not reliably give up a blocking read when its
task is cancelled (the task was seen to swallow the cancellation and wait on), so a
worker could not stop. A read that returns at once, and a pause that :meth:`stop`
cuts short, always can; four reads a second a worker are nothing to Redis."""
STOP_TIMEOUT_S = 2.0
"""Longest :meth:`SharedPurges.stop` waits for the reader to finish its read."""
READ_COUNT = 100
CLOCK_MARGIN_MS = 5000
"""How much earlier than its start a reader begins (see the module docstring)."""
_LAST_SEQUENCE = 2**64 - 1
"""The largest sequence number of a stream id (``<ms>-<sequence>``)."""
RETRY_PAUSES = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Pauses after consecutive failed reads; the last repeats."""


class PurgeNotShared(Exception):
    """The purge could not be appended to the stream (its message says why)."""


def node_id(several_workers: bool) -> str:
    """This edge's name in the entries it appends: host and the process that owns its
    workers (their supervisor, whose child every worker is), or this process alone."""
    owner = os.getppid() if several_workers else os.getpid()
    return f"{socket.gethostname()}/{owner}"


def redis_client(url: str, timeout: float) -> aioredis.Redis:
    """The client of a worker's purge stream. Socket timeouts of ``timeout``, so that a
    Redis that hangs fails a call by itself: redis-py does not reliably give a command up
    when its task is cancelled."""
    return aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


class SharedPurgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.purges = Counter(
            "meshgate_cache_shared_purges",
            "Purges shared through the Redis stream, by outcome: published (appended), "
            "unpublished (the append failed), applied (another edge's, carried out), "
            "invalid (an entry that says no purge).",
            ["outcome"],
            registry=registry,
        )
        self.read_errors = Counter(
            "meshgate_cache_shared_purge_read_errors",
            "Reads of the purge stream that failed (each retried after a pause).",
            registry=registry,
        )


class SharedPurges:
    """One worker's end of the purge stream: :meth:`publish` appends, :meth:`start`
    reads and carries out the other edges' purges with ``apply``."""

    def __init__(
        self,
        client: aioredis.Redis,
        stream: str,
        max_length: int,
        timeout: float,
        node: str,
        apply: Callable[[Purge], int],
        metrics: SharedPurgeMetrics,
        since_ms: int | None = None,
    ) -> None:
        """``since_ms``: entries appended before this time (milliseconds since the epoch,
        Redis's clock) are not carried out; default: :data:`CLOCK_MARGIN_MS` before now."""
        self._client = client
        self._stream = stream
        self._max_length = max_length
        self._timeout = timeout
        self._node = node
        self._apply = apply
        self._metrics = metrics
        if since_ms is None:
            since_ms = int(time.time() * 1000) - CLOCK_MARGIN_MS
        # XREAD gives the entries after the id it is given: the last id of the ms before.
        self.last_id = f"{max(since_ms - 1, 0)}-{_LAST_SEQUENCE}"
        """The id of the last entry read, or the one reading begins after."""
        self.read_error: str | None = None
        """Why the last read failed, until one succeeds (None: reading)."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def publish(self, purge: Purge) -> str:
        """Append ``purge``; the entry's id. Raises :class:`PurgeNotShared`."""
        fields: dict[Any, Any] = {
            FIELD_PURGE: json.dumps(purge.as_json()),
            FIELD_ORIGIN: self._node,
        }
        try:
            async with asyncio.timeout(self._timeout):
                entry = await self._client.xadd(
                    self._stream, fields, maxlen=self._max_length, approximate=True
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._metrics.purges.labels("unpublished").inc()
            reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            raise PurgeNotShared(f"Redis: {reason or type(exc).__name__}") from None
        self._metrics.purges.labels("published").inc()
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def view(self) -> dict[str, Any]:
        """This worker's reader, for the admin listener's ``/cache``."""
        return {
            "stream": self._stream,
            "node": self._node,
            "last_id": self.last_id,
            "reading": self._task is not None and self.read_error is None,
            "read_error": self.read_error,
        }

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_forever())

    async def stop(self) -> None:
        """Stop reading (the read under way finishes, within :data:`STOP_TIMEOUT_S`) and
        close the client."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
            except TimeoutError:
                task.cancel()  # a read that hangs: left to its cancellation
        await self._client.aclose()

    async def _read_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                full = await self._read_once()
                failures = 0
                self.read_error = None
                pause = 0.0 if full else POLL_S
            except Exception as exc:  # the reader must outlive any one failure
                self._metrics.read_errors.inc()
                self.read_error = str(exc) or type(exc).__name__
                if not isinstance(exc, RedisError | OSError):
                    log.exception("cache: reading the purge stream %s failed", self._stream)
                elif failures == 0:
                    log.warning("cache: cannot read the purge stream %s: %s", self._stream, exc)
                pause = RETRY_PAUSES[min(failures, len(RETRY_PAUSES) - 1)]
                failures += 1
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)

    async def _read_once(self) -> bool:
        """Read and carry out what was appended since the last entry read; whether it was
        a full batch (more may be waiting)."""
        # [[stream, [(id, {field: value}), ...]]], or nothing new.
        answer: Any = await self._client.xread({self._stream: self.last_id}, count=READ_COUNT)
        read = 0
        for _, entries in answer or ():
            for entry_id, fields in entries:
                read += 1
                self.take(_text(entry_id), fields)
        return read >= READ_COUNT

    def take(self, entry_id: str, fields: Mapping[Any, Any]) -> None:
        """Carry out entry ``entry_id`` unless this edge appended it or it says no purge;
        either way it counts as read."""
        self.last_id = entry_id
        said = {_text(name): _text(value) for name, value in fields.items()}
        if said.get(FIELD_ORIGIN) == self._node:
            return
        try:
            purge = parse_purge(json.loads(said.get(FIELD_PURGE, "")))
        except ValueError:
            purge = "not JSON"
        if isinstance(purge, str):
            self._metrics.purges.labels("invalid").inc()
            log.warning("cache: purge stream entry %s skipped: %s", entry_id, purge)
            return
        purged = self._apply(purge)
        self._metrics.purges.labels("applied").inc()
        log.info(
            "cache: purge from %s (entry %s) removed %d entries",
            said.get(FIELD_ORIGIN, "?"),
            entry_id,
            purged,
        )


def sharing(purge: AdminHandler, shared: SharedPurges, several_workers: bool) -> AdminHandler:
    """``POST /cache/purge``'s ``purge`` handler, then, when the purge was for every
    worker of this edge and done, the same purge appended to the stream for the other
    edges: 200 with ``shared`` saying the entry's id, or a 503 problem with the local
    answer when it could not be appended. ``workers=this`` with several workers (a
    purge of one worker, or another worker's share of this edge's purge) is not passed
    on."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = await purge(request)
        only_this = several_workers and request.query.get(WORKERS_QUERY) == THIS_WORKER
        if (
            response.status != 200
            or only_this
            or not isinstance(response, web.Response)
            or not isinstance(response.body, bytes)
        ):
            return response
        # The body was read, and said a purge, or the answer would not be a 200; aiohttp
        # keeps what it read.
        said = parse_purge(json.loads(await request.read()))
        if isinstance(said, str):  # pragma: no cover - see above
            return response
        answer = json.loads(response.body)
        try:
            entry = await shared.publish(said)
        except PurgeNotShared as exc:
            return problem_response(
                503,
                "Purged here, not shared",
                f"the purge was carried out on this edge but not passed on to the others: {exc}",
                None,
                slug="purge-not-shared",
                extra={**answer, "shared": {"published": False, "error": str(exc)}},
            )
        return json_response({**answer, "shared": {"published": True, "id": entry}})

    return handle


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
