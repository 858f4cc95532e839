"""Access logs: one JSON line per request, cheap enough to leave on.

Each line is one JSON object (keys in this order)::

    {"ts":"2025-01-31T12:00:00.123Z","role":"edge","request_id":"…","trace_id":"…",
     "method":"GET","path":"/api/orders/7","route":"orders","service":"orders",
     "instance":"orders-1","status":200,"duration_ms":1.234,"client":"10.0.0.7",
     "subject":"alice","rate_limit":"allowed","cache":"hit"}

``path`` is the normalised path without the query string (queries carry API
keys often enough). ``subject`` is the authenticated caller's subject from
``ex.attrs["identity"]`` (an object with a ``subject`` string, such as
:class:`edge.auth.claims.Claims`; never a token); ``rate_limit`` the outcome
in ``ex.attrs["rate_limit"]`` (a string, or a result with ``allowed`` and
``source``); ``cache`` what the edge's response cache did, from
``ex.attrs["cache"]`` (a string: ``hit``, ``miss``, ...). Absent values are
``null``.

Cost: no ``logging`` machinery; the line is formatted with string
operations (C-accelerated JSON string escaping), the timestamp's seconds are
formatted once per second, and lines are buffered and written with one
``os.write`` when ``buffer_bytes`` are pending or ``flush_interval`` has
passed, whichever comes first. Writes go to a file descriptor opened in
append mode, so several worker processes can share one file: each write
lands whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import time
from collections.abc import Callable, Mapping

from mesh.config.errors import ConfigError
from mesh.exchange import Exchange
from mesh.telemetry.config import AccessLogConfig

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _q(value: str | None) -> str:
    return "null" if value is None else _quote(value)


_MILLIS = tuple(f"{millis:03d}" for millis in range(1001))
"""``.123`` of the timestamp, by milliseconds (1000 only if a float rounds up to it)."""
_METHODS = {
    method: _quote(method)
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
}
"""The ``method`` field's quoted value, for the standard methods."""


_OUTCOMES = {
    outcome: _quote(outcome) for outcome in ("allowed", "refused", "failed_open", "failed_closed")
}
"""The ``rate_limit`` field's quoted value, for the outcomes :func:`rate_limit_outcome` gives."""

_CACHE_RESULTS: dict[str, str] = {}
"""The ``cache`` field's quoted value per result of the edge cache (a handful, each quoted
once, when first seen: the results are the cache's to name, see edge.cache.metrics)."""

_MAX_SUBJECTS = 4096
"""Identities whose quoted subject a log keeps; past that it starts over."""


_UNCHANGING: dict[type, bool] = {}


def _unchanging(cls: type) -> bool:
    """Instances of ``cls`` never change their fields: a frozen dataclass."""
    known = _UNCHANGING.get(cls)
    if known is None:
        params = (
            getattr(cls, "__dataclass_params__", None) if dataclasses.is_dataclass(cls) else None
        )
        known = _UNCHANGING[cls] = bool(getattr(params, "frozen", False))
    return known


def subject_of(identity: object) -> str | None:
    """The subject of an identity: its ``subject`` attribute, a ``sub`` key, or the string."""
    if identity is None:
        return None
    if isinstance(identity, str):
        return identity
    subject = getattr(identity, "subject", None)
    if isinstance(subject, str):
        return subject
    if isinstance(identity, Mapping):
        value = identity.get("sub", identity.get("subject"))
        return value if isinstance(value, str) else None
    return None


def rate_limit_outcome(result: object) -> str | None:
    """``allowed``, ``refused``, ``failed_open`` or ``failed_closed``; a string is kept as is."""
    if result is None:
        return None
    if isinstance(result, str):
        return result
    allowed = getattr(result, "allowed", None)
    if not isinstance(allowed, bool):
        return None
    source = getattr(result, "source", None)
    if allowed:
        return "failed_open" if source == "open" else "allowed"
    return "failed_closed" if source == "closed" else "refused"


class AccessLog:
    """Buffered JSON-lines writer on a file descriptor.

    ``record`` never raises for a failed write: the error is counted in
    ``write_errors`` and the pending lines are dropped (losing log lines
    beats failing requests). ``close`` writes what is pending.
    """

    def __init__(
        self,
        fd: int,
        role: str,
        *,
        buffer_bytes: int = 65536,
        flush_interval: float = 1.0,
        owns_fd: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fd = fd
        self._owns_fd = owns_fd
        self._role = _quote(role)
        self._buffer_bytes = buffer_bytes
        self._flush_interval = flush_interval
        self._clock = clock
        self._monotonic = monotonic
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._line_start = ""
        """The line up to the timestamp's milliseconds, for the current second."""
        self._closed = False
        self.write_errors = 0
        # id(identity) -> (identity, its quoted subject): the edge hands every
        # request of a cached caller the same Identity object, so the field is
        # made once per caller. Only for identities that cannot change (frozen
        # dataclasses); the object is kept so that its id is not reused.
        self._subjects: dict[int, tuple[object, str]] = {}

    @classmethod
    def open(cls, config: AccessLogConfig, role: str) -> AccessLog | None:
        """The access log ``config`` asks for; None when disabled.

        Raises ConfigError (naming the path) when the file cannot be opened.
        """
        if not config.enabled:
            return None
        owns = config.path not in ("-", "stdout", "stderr")
        if config.path in ("-", "stdout"):
            fd = 1
        elif config.path == "stderr":
            fd = 2
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            try:
                fd = os.open(config.path, flags, 0o644)
            except OSError as exc:
                raise _cannot_open(config.path, exc.strerror or str(exc)) from None
        return cls(
            fd,
            role,
            buffer_bytes=config.buffer_bytes,
            flush_interval=config.flush_interval,
            owns_fd=owns,
        )

    @staticmethod
    def check(config: AccessLogConfig) -> bool:
        """Raise the ConfigError :meth:`open` would for a file it could not open, without
        opening or creating anything (``meshgate edge --check``); False when the log
        is off or goes to standard output or error (nothing to check)."""
        if not config.enabled or config.path in ("-", "stdout", "stderr"):
            return False
        path = config.path
        directory = os.path.dirname(path) or "."
        if os.path.isdir(path):
            raise _cannot_open(path, os.strerror(errno.EISDIR))
        if os.path.exists(path):
            if not os.access(path, os.W_OK):
                raise _cannot_open(path, os.strerror(errno.EACCES))
        elif not os.path.isdir(directory):
            raise _cannot_open(path, os.strerror(errno.ENOENT))
        elif not os.access(directory, os.W_OK | os.X_OK):
            raise _cannot_open(path, os.strerror(errno.EACCES))
        return True

    def format(self, ex: Exchange, status: int) -> str:
        """The line (with its newline) for ``ex`` answered with ``status``, ending now."""
        # Every request pays for this: absent values are tested inline rather
        # than through _q, and the parts that repeat (the second, the method,
        # the milliseconds) come from tables.
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._line_start = f'{{"ts":"{stamp}.'
        duration_ms = (self._monotonic() - ex.started) * 1000
        trace_id = ex.trace_id
        instance = ex.instance
        route = ex.route
        service = ex.service
        method = ex.method
        attrs = ex.attrs
        identity = attrs.get("identity")
        if identity is None:
            subject = "null"
        else:
            known = self._subjects.get(id(identity))
            subject = (
                known[1] if known is not None and known[0] is identity else self._subject(identity)
            )
        limit = attrs.get("rate_limit")
        if limit is None:
            outcome = "null"
        else:
            text = rate_limit_outcome(limit)
            outcome = "null" if text is None else _OUTCOMES.get(text) or _quote(text)
        cached = attrs.get("cache")
        if cached is None:
            cache = "null"
        else:
            cache = _CACHE_RESULTS.get(cached) or _CACHE_RESULTS.setdefault(cached, _quote(cached))
        return (
            f'{self._line_start}{_MILLIS[int((now - second) * 1000)]}Z","role":{self._role},'
            f'"request_id":{_quote(ex.request_id)},'
            f'"trace_id":{"null" if trace_id is None else _quote(trace_id)},'
            f'"method":{_METHODS.get(method) or _quote(method)},"path":{_quote(ex.path)},'
            f'"route":{"null" if route is None else _quote(route)},'
            f'"service":{"null" if service is None else _quote(service)},'
            f'"instance":{"null" if instance is None else _quote(instance.id)},'
            f'"status":{status},"duration_ms":{duration_ms:.3f},"client":{_quote(ex.client_ip)},'
            f'"subject":{subject},"rate_limit":{outcome},"cache":{cache}}}\n'
        )

    def _subject(self, identity: object) -> str:
        """The ``subject`` field's value for ``identity``, kept when it cannot change."""
        quoted = _q(subject_of(identity))
        if _unchanging(type(identity)):
            subjects = self._subjects
            if len(subjects) >= _MAX_SUBJECTS:
                subjects.clear()  # past the working set: start over rather than track recency
            subjects[id(identity)] = (identity, quoted)
        return quoted

    def record(self, ex: Exchange, status: int) -> None:
        """Log ``ex``; written at once, when the buffer is full, or by the flush timer."""
        if self._closed:
            return
        line = self.format(ex, status)
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= self._buffer_bytes:
            self.flush()
        elif self._timer is None and self._flush_interval > 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(self._flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write every pending line now."""
        if not self._pending:
            return
        data = "".join(self._pending).encode("utf-8")
        self._pending.clear()
        self._pending_bytes = 0
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self.write_errors += 1

    def close(self) -> None:
        """Flush, stop the timer and close the file (if this log opened it); idempotent."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._owns_fd:
            os.close(self._fd)


def _cannot_open(path: str, reason: str) -> ConfigError:
    return ConfigError(path, f"cannot open the access log: {reason}", "telemetry.access_log.path")
