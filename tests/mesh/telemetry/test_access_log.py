"""Access logs: one JSON line per request, buffered, never a credential."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web

from edge.auth.claims import Claims
from mesh.config.errors import ConfigError
from mesh.exchange import Exchange
from mesh.filters.access_log import AccessLogFilter
from mesh.snapshot import Instance
from mesh.telemetry.access_log import AccessLog, rate_limit_outcome, subject_of
from mesh.telemetry.config import AccessLogConfig
from tests.mesh.telemetry.support import Recorder, make_exchange


class Pipe:
    """The read end of a pipe whose write end an AccessLog writes to."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)

    def lines(self) -> list[str]:
        try:
            data = os.read(self.read_fd, 1 << 20)
        except BlockingIOError:
            return []
        return data.decode().splitlines()


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    os.close(p.read_fd)
    os.close(p.write_fd)


def served(ex: Exchange) -> Exchange:
    ex.route, ex.service = "orders-api", "orders"
    ex.instance = Instance(id="orders-1", service="orders", address="10.0.0.5", port=15000)
    return ex


def test_a_line_has_every_field(pipe: Pipe) -> None:
    log = AccessLog(
        pipe.write_fd, "edge", buffer_bytes=0, clock=lambda: 1700000000.25, monotonic=lambda: 10.5
    )
    ex = served(make_exchange())
    ex.started = 10.5 - 0.0123
    Recorder(sampler_ratio=0.0).tracing.start_request(ex)
    assert ex.trace_id is not None and len(ex.trace_id) == 32
    ex.attrs["identity"] = Claims(subject="alice", token_id="jti-secret-ish")
    ex.attrs["rate_limit"] = SimpleNamespace(allowed=True, source="redis")
    ex.attrs["cache"] = "hit"
    log.record(ex, 201)
    [line] = pipe.lines()
    entry = json.loads(line)
    assert entry == {
        "ts": "2023-11-14T22:13:20.250Z",
        "role": "edge",
        "request_id": "req-0001",
        "trace_id": ex.trace_id,
        "method": "GET",
        "path": "/api/orders/7",
        "route": "orders-api",
        "service": "orders",
        "instance": "orders-1",
        "status": 201,
        "duration_ms": pytest.approx(12.3, abs=0.01),
        "client": "192.0.2.7",
        "subject": "alice",
        "rate_limit": "allowed",
        "cache": "hit",
    }
    assert list(entry) == list(json.loads(line))  # stable key order


def test_absent_values_are_null_and_strings_are_escaped(pipe: Pipe) -> None:
    log = AccessLog(pipe.write_fd, "sidecar", buffer_bytes=0)
    ex = make_exchange(path='/we"ird\\path\n\u00e9')
    log.record(ex, 404)
    entry = json.loads(pipe.lines()[0])
    assert entry["path"] == '/we"ird\\path\n\u00e9'
    assert (entry["trace_id"], entry["route"], entry["instance"], entry["subject"]) == (
        None,
        None,
        None,
        None,
    )
    assert entry["cache"] is None  # not a cached route's request


def test_lines_wait_in_the_buffer_until_it_fills(pipe: Pipe) -> None:
    log = AccessLog(pipe.write_fd, "edge", buffer_bytes=1000, flush_interval=0)
    ex = make_exchange()
    line_size = len(log.format(ex, 200))
    per_flush = -(-1000 // line_size)
    for _ in range(per_flush - 1):
        log.record(ex, 200)
    assert pipe.lines() == []
    log.record(ex, 200)
    assert len(pipe.lines()) == per_flush
    log.record(ex, 200)
    log.close()
    assert len(pipe.lines()) == 1
    log.record(ex, 200)  # closed: ignored
    assert pipe.lines() == []


async def test_pending_lines_are_flushed_by_the_timer(pipe: Pipe) -> None:
    log = AccessLog(pipe.write_fd, "edge", buffer_bytes=1 << 20, flush_interval=0.05)
    log.record(make_exchange(), 200)
    assert pipe.lines() == []
    await asyncio.sleep(0.15)
    assert len(pipe.lines()) == 1
    log.close()


def test_write_errors_are_counted_not_raised() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    log = AccessLog(write_fd, "edge", buffer_bytes=0)
    try:
        log.record(make_exchange(), 200)  # EPIPE (SIGPIPE is ignored by Python)
        assert log.write_errors == 1
    finally:
        os.close(write_fd)


def test_open_a_file_appends_and_a_bad_path_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    log = AccessLog.open(AccessLogConfig(path=str(path), buffer_bytes=0), "edge")
    assert log is not None
    log.record(make_exchange(), 200)
    log.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "earlier" and json.loads(lines[1])["status"] == 200
    assert AccessLog.open(AccessLogConfig(enabled=False), "edge") is None
    with pytest.raises(ConfigError, match=r"telemetry\.access_log\.path"):
        AccessLog.open(AccessLogConfig(path=str(tmp_path / "missing" / "a.log")), "edge")


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (None, None),
        ("svc-account", "svc-account"),
        (Claims(subject="bob"), "bob"),
        ({"sub": "carol", "token": "never-logged"}, "carol"),
        ({"token": "never-logged"}, None),
        (object(), None),
    ],
)
def test_subject_of(identity: object, expected: str | None) -> None:
    assert subject_of(identity) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, None),
        ("refused", "refused"),
        (SimpleNamespace(allowed=True, source="redis"), "allowed"),
        (SimpleNamespace(allowed=False, source="redis"), "refused"),
        (SimpleNamespace(allowed=True, source="open"), "failed_open"),
        (SimpleNamespace(allowed=False, source="closed"), "failed_closed"),
        (object(), None),
    ],
)
def test_rate_limit_outcome(result: object, expected: str | None) -> None:
    assert rate_limit_outcome(result) == expected


async def test_filter_logs_what_was_answered_even_on_errors(pipe: Pipe) -> None:
    flt = AccessLogFilter(AccessLog(pipe.write_fd, "edge", buffer_bytes=0))

    async def teapot(_: Exchange) -> web.StreamResponse:
        return web.Response(status=418)

    async def broken(_: Exchange) -> web.StreamResponse:
        raise RuntimeError("bug")

    await flt(make_exchange(), teapot)
    with pytest.raises(RuntimeError):
        await flt(make_exchange(), broken)
    assert [json.loads(x)["status"] for x in pipe.lines()] == [418, 500]


async def test_filter_logs_only_what_its_selection_keeps(pipe: Pipe) -> None:
    # Nothing sampled: only the refusals and failures (status 400 and above).
    selection = AccessLogConfig(sample=0.0, keep_status_from=400).selection()
    assert selection is not None
    flt = AccessLogFilter(AccessLog(pipe.write_fd, "edge", buffer_bytes=0), selection)

    def answering(status: int) -> Callable[[Exchange], Awaitable[web.StreamResponse]]:
        async def answer(_: Exchange) -> web.StreamResponse:
            return web.Response(status=status)

        return answer

    for status in (200, 404, 204, 503, 302):
        await flt(make_exchange(), answering(status))
    assert [json.loads(x)["status"] for x in pipe.lines()] == [404, 503]


def test_every_request_needs_no_selection() -> None:
    assert AccessLogConfig().selection() is None
    # A sample of 1 logs everything, whatever the rules say.
    assert AccessLogConfig(keep_status_from=500, keep_slower_than=1.0).selection() is None
    chosen = AccessLogConfig.model_validate(
        {"sample": 0.25, "keep_slower_than": "500ms"}
    ).selection()
    assert chosen is not None
    assert (chosen.sample, chosen.keep_status_from, chosen.keep_slower_than) == (0.25, None, 0.5)


def test_the_timestamp_follows_the_clock_across_seconds(pipe: Pipe) -> None:
    times = iter([1700000000.125, 1700000000.75, 1700000001.5])
    log = AccessLog(pipe.write_fd, "edge", buffer_bytes=0, clock=lambda: next(times))
    for method in ("GET", "BREW", "GET"):
        log.record(served(make_exchange(method=method)), 200)
    entries = [json.loads(line) for line in pipe.lines()]
    assert [e["ts"] for e in entries] == [
        "2023-11-14T22:13:20.125Z",
        "2023-11-14T22:13:20.750Z",
        "2023-11-14T22:13:21.500Z",
    ]
    assert [e["method"] for e in entries] == ["GET", "BREW", "GET"]


def _subject_in(log: AccessLog, identity: object) -> object:
    ex = make_exchange()
    ex.attrs["identity"] = identity
    return json.loads(log.format(ex, 200))["subject"]


def test_a_cached_callers_subject_is_made_once_and_stays_right() -> None:
    log = AccessLog(-1, "edge")
    alice = Claims(subject='al"ice', token_id="t1")
    assert _subject_in(log, alice) == 'al"ice'
    assert _subject_in(log, alice) == 'al"ice'
    assert list(log._subjects.values()) == [(alice, '"al\\"ice"')]
    # Another identity object (even an equal one) is looked at for itself.
    assert _subject_in(log, Claims(subject="bob", token_id="t2")) == "bob"


def test_identities_that_can_change_are_read_every_time() -> None:
    log = AccessLog(-1, "edge")
    caller = SimpleNamespace(subject="alice")
    assert _subject_in(log, caller) == "alice"
    caller.subject = "mallory"
    assert _subject_in(log, caller) == "mallory"
    mapping = {"sub": "carol"}
    assert _subject_in(log, mapping) == "carol"
    mapping["sub"] = "dave"
    assert _subject_in(log, mapping) == "dave"
    assert log._subjects == {}


def test_kept_subjects_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mesh.telemetry.access_log._MAX_SUBJECTS", 3)
    log = AccessLog(-1, "edge")
    callers = [Claims(subject=f"user-{i}", token_id=f"t{i}") for i in range(7)]
    for caller in callers:
        assert _subject_in(log, caller) == caller.subject
        assert len(log._subjects) <= 3


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (SimpleNamespace(allowed=True, source="redis"), "allowed"),
        (SimpleNamespace(allowed=False, source="closed"), "failed_closed"),
        ("custom", "custom"),
        (SimpleNamespace(allowed="yes"), None),
    ],
)
def test_rate_limit_field(result: object, field: str | None) -> None:
    ex = make_exchange()
    ex.attrs["rate_limit"] = result
    assert json.loads(AccessLog(-1, "edge").format(ex, 200))["rate_limit"] == field
