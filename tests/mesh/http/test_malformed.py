"""Requests the HTTP parser refuses (mesh/http/malformed.py): JSON problems, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from prometheus_client import CollectorRegistry

from mesh.connections import ConnectionLimits
from mesh.http.malformed import describe
from mesh.server import Listener
from mesh.telemetry.metrics import ProxyMetrics


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (LineTooLong("x" * 9000, "8190"), "Got more than 8190 bytes when reading"),
        (BadHttpMethod(error="Invalid method encountered:\n\n  b'GARBAGE'"), "Invalid method"),
        (BadStatusLine("GET xxx"), "Bad status line"),
        (InvalidHeader(b"xxx Header"), "Invalid HTTP header"),
        (InvalidURLError("Invalid characters in url:\n\n  b'/xxx'"), "Invalid characters in url"),
        (BadHttpMessage("Invalid character in chunk size:\n\n  b'xxx'"), "chunk size"),
        (ContentLengthError("Not enough data to satisfy content length header."), "content"),
        (BadHttpMessage("x" * 200), "the request is malformed"),  # no reason: all client bytes
        (ValueError("no message"), "the request is malformed"),
        (None, "the request is malformed"),
    ],
)
def test_describe_gives_the_parsers_reason_without_the_clients_bytes(
    exc: BaseException | None, reason: str
) -> None:
    text = describe(exc)
    assert reason in text
    assert "xxx" not in text and "GARBAGE" not in text


async def _ok(_: web.BaseRequest) -> web.Response:
    return web.Response(text="ok")


MALFORMED = [
    pytest.param(b"GARBAGE\r\n\r\n", id="not-http"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"q" * 9000 + b"\r\n\r\n", id="big-header"
    ),
    pytest.param(b"GET /" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="long-target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: qqq\r\n\r\n", id="bad-header-name"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nqq\r\n", id="bad-chunk"
    ),
]


@pytest.mark.parametrize("raw", MALFORMED)
async def test_a_malformed_request_gets_a_problem_and_no_traceback(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    observer = ProxyMetrics(registry, "edge").connection_observer("test")
    listener = Listener(
        "test", _ok, "127.0.0.1", 0, connections=ConnectionLimits(), connection_observer=observer
    )
    await listener.start()
    try:
        with caplog.at_level(logging.DEBUG):
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(raw)
            answer = await asyncio.wait_for(reader.read(), 5)  # and the connection is closed
            writer.close()
    finally:
        await listener.stop()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert status_line.split()[1] == "400"
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"].endswith("/bad-request") and problem["status"] == 400
    assert problem["request_id"] == headers["x-request-id"]
    assert b"qq" not in body and b"GARBAGE" not in body  # nothing of the client's echoed
    counted = registry.get_sample_value(
        "meshgate_malformed_requests_total", {"role": "edge", "listener": "test"}
    )
    assert counted == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any("malformed request" in r.getMessage() for r in caplog.records)
