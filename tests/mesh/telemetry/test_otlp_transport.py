"""The http.client transport against real receivers: keep-alive, errors as results, TLS."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from mesh.telemetry.otlp_transport import HTTPClientTransport, ResponseTimeout

Reply = Callable[[http.server.BaseHTTPRequestHandler, bytes], None]


class Receiver:
    """A threaded HTTP/1.1 receiver; ``reply`` answers each POST; counts connections."""

    def __init__(self, reply: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                receiver.connections += 1
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, body, dict(self.headers.items())))
                reply(self, body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def ok(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/x-protobuf")
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"ok")


@pytest.fixture
def transport() -> Iterator[HTTPClientTransport]:
    made = HTTPClientTransport()
    yield made
    made.close()


def test_requests_share_one_kept_alive_connection(transport: HTTPClientTransport) -> None:
    with Receiver(ok) as receiver:
        for n in range(3):
            result = transport.request(
                "POST",
                receiver.url(),
                headers={"Content-Type": "application/x-protobuf", "X-Tenant": "t1"},
                data=b"spans %d" % n,
                timeout=5.0,
            )
            assert (result.status_code, result.reason, result.error) == (200, "OK", None)
            assert result.content() == b"ok"
            assert result.headers()["content-type"] == "application/x-protobuf"
    assert receiver.connections == 1
    assert [(path, body) for path, body, _ in receiver.requests] == [
        ("/v1/traces", b"spans 0"),
        ("/v1/traces", b"spans 1"),
        ("/v1/traces", b"spans 2"),
    ]
    assert all(headers["X-Tenant"] == "t1" for _, _, headers in receiver.requests)


def test_a_status_and_its_headers_are_returned_not_raised(transport: HTTPClientTransport) -> None:
    def busy(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(503)
        handler.send_header("Retry-After", "3")
        handler.send_header("X-Note", "a")
        handler.send_header("X-Note", "b")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with Receiver(busy) as receiver:
        result = transport.request("POST", receiver.url(), data=b"x", timeout=5.0)
    assert result.status_code == 503 and result.error is None
    headers = result.headers()
    assert headers["retry-after"] == headers["Retry-After"] == "3"
    assert headers["x-note"] == "a, b"


def test_a_connection_the_receiver_closed_is_a_connection_error_then_reopened(
    transport: HTTPClientTransport,
) -> None:
    def then_close(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        ok(handler, body)
        handler.wfile.flush()
        handler.close_connection = True  # closed without saying so: a stale keep-alive

    with Receiver(then_close) as receiver:
        assert transport.request("POST", receiver.url(), data=b"1", timeout=5.0).status_code == 200
        time.sleep(0.2)
        stale = transport.request("POST", receiver.url(), data=b"2", timeout=5.0)
        assert stale.status_code is None and stale.error is not None
        assert transport.is_connection_error(stale.error)  # the SDK retries it at once
        again = transport.request("POST", receiver.url(), data=b"2", timeout=5.0)
        assert again.status_code == 200
    assert receiver.connections == 2


def test_connection_close_is_honoured(transport: HTTPClientTransport) -> None:
    def closing(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.send_header("Connection", "close")
        handler.end_headers()

    with Receiver(closing) as receiver:
        for _ in range(2):
            result = transport.request("POST", receiver.url(), data=b"x", timeout=5.0)
            assert result.status_code == 200
    assert receiver.connections == 2


def test_refused_is_a_connection_error(transport: HTTPClientTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = transport.request("POST", f"http://127.0.0.1:{port}/v1/traces", data=b"x", timeout=2.0)
    assert isinstance(result.error, ConnectionRefusedError)
    assert transport.is_connection_error(result.error)
    assert not transport.is_connection_error(None)


def test_no_response_in_time_is_a_timeout_not_a_connection_error(
    transport: HTTPClientTransport,
) -> None:
    release = threading.Event()

    def stalled(handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        release.wait(5.0)
        ok(handler, body)

    with Receiver(stalled) as receiver:
        result = transport.request("POST", receiver.url(), data=b"x", timeout=0.2)
        release.set()
    assert isinstance(result.error, ResponseTimeout)
    assert not transport.is_connection_error(result.error)


def test_an_unusable_url_is_an_error_in_the_result(transport: HTTPClientTransport) -> None:
    result = transport.request("POST", "ftp://collector.example/v1/traces", data=b"x")
    assert isinstance(result.error, ValueError) and result.status_code is None


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return server, bundle


def test_tls_is_verified_against_the_bundle_given(tls: tuple[ssl.SSLContext, Path]) -> None:
    server, bundle = tls
    with Receiver(ok, server) as receiver:
        trusted = HTTPClientTransport(verify=str(bundle))
        result = trusted.request("POST", receiver.url("https"), data=b"x", timeout=5.0)
        assert result.status_code == 200
        trusted.close()
        system = HTTPClientTransport()  # the receiver's CA is in no default store
        refused = system.request("POST", receiver.url("https"), data=b"x", timeout=5.0)
        assert isinstance(refused.error, ssl.SSLCertVerificationError)
        system.close()
        unverified = HTTPClientTransport(verify=False)
        result = unverified.request("POST", receiver.url("https"), data=b"x", timeout=5.0)
        assert result.status_code == 200
        unverified.close()
