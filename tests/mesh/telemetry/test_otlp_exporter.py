"""The exporter's session: the environment read once, as requests would read it per request."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

from mesh.telemetry import otlp_exporter
from mesh.telemetry.otlp_exporter import FastOTLPSpanExporter, settle_verify, settled_session

ENDPOINT = "http://collector.example:4318/v1/traces"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NETRC",
        *otlp_exporter.CREDENTIAL_PROVIDER_VARIABLES,
    ):
        monkeypatch.delenv(name, raising=False)


def _made_sessions(monkeypatch: pytest.MonkeyPatch) -> list[requests.Session]:
    made: list[requests.Session] = []

    def recording(endpoint: str) -> requests.Session:
        made.append(settled_session(endpoint))
        return made[-1]

    monkeypatch.setattr(otlp_exporter, "settled_session", recording)
    return made


def test_proxies_are_resolved_once_and_no_proxy_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    session = settled_session(ENDPOINT)
    assert session.trust_env is False
    assert session.proxies["http"] == "http://proxy.example:3128"
    # What requests itself would use for this URL with trust_env:
    assert requests.Session().merge_environment_settings(ENDPOINT, {}, None, None, None)[
        "proxies"
    ] == dict(session.proxies)

    monkeypatch.setenv("NO_PROXY", "collector.example")
    assert dict(settled_session(ENDPOINT).proxies) == {}


def test_a_ca_bundle_from_the_environment_replaces_only_verify_true(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    session = requests.Session()
    settle_verify(session)
    assert session.verify == "/etc/ssl/bundle.pem"
    session.verify = "/etc/ssl/own.pem"
    settle_verify(session)
    assert session.verify == "/etc/ssl/own.pem"
    session.verify = False
    settle_verify(session)
    assert session.verify is False


def test_the_exporter_sends_with_a_settled_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    made = _made_sessions(monkeypatch)
    FastOTLPSpanExporter(endpoint=ENDPOINT).shutdown()
    [session] = made
    assert session.trust_env is False and session.verify == "/etc/ssl/bundle.pem"

    FastOTLPSpanExporter(endpoint=ENDPOINT, certificate_file="/etc/ssl/otlp.pem").shutdown()
    assert made[1].verify == "/etc/ssl/otlp.pem"  # the exporter's own setting wins


def test_a_given_session_or_a_credential_provider_is_left_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = _made_sessions(monkeypatch)
    own = requests.Session()
    FastOTLPSpanExporter(endpoint=ENDPOINT, session=own).shutdown()
    assert made == [] and own.trust_env is True

    monkeypatch.setenv(otlp_exporter.CREDENTIAL_PROVIDER_VARIABLES[1], "no-such-provider")
    with pytest.raises(RuntimeError):  # the SDK looked for the provider's entry point
        FastOTLPSpanExporter(endpoint=ENDPOINT)
    assert made == []


def test_posts_go_through_the_sdk_s_urllib3_transport_when_nothing_needs_requests() -> None:
    exporter = FastOTLPSpanExporter(endpoint=ENDPOINT)
    transport = exporter._client._transport
    assert exporter.transport == "urllib3" and isinstance(transport, Urllib3HTTPTransport)
    # verify=True means requests' CA bundle, as before, not urllib3's default store
    assert transport._pool.connection_pool_kw["ca_certs"] == requests.utils.DEFAULT_CA_BUNDLE_PATH
    exporter.shutdown()

    exporter = FastOTLPSpanExporter(
        endpoint=ENDPOINT,
        certificate_file="/etc/ssl/otlp.pem",
        client_certificate_file="/etc/ssl/client.pem",
        client_key_file="/etc/ssl/client.key",
    )
    kw = exporter._client._transport._pool.connection_pool_kw
    assert kw["ca_certs"] == "/etc/ssl/otlp.pem"
    assert (kw["cert_file"], kw["key_file"]) == ("/etc/ssl/client.pem", "/etc/ssl/client.key")
    exporter.shutdown()


@pytest.mark.parametrize("setting", ["proxy", "netrc", "session"])
def test_requests_stays_for_proxies_netrc_credentials_and_given_sessions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str
) -> None:
    kwargs: dict[str, object] = {}
    if setting == "proxy":
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    elif setting == "netrc":
        netrc = tmp_path / "netrc"
        netrc.write_text("machine collector.example login user password secret\n")
        monkeypatch.setenv("NETRC", str(netrc))
    else:
        kwargs["session"] = requests.Session()
    exporter = FastOTLPSpanExporter(endpoint=ENDPOINT, **kwargs)  # type: ignore[arg-type]
    assert exporter.transport == "requests"
    assert isinstance(exporter._client._transport, RequestsHTTPTransport)
    exporter.shutdown()


def test_an_exporter_without_the_sdk_transports_stays_on_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Exporters before the transport package (the project allows >= 1.25) import
    # without it: the names are None, and every POST goes through requests.
    monkeypatch.setattr(otlp_exporter, "RequestsHTTPTransport", None)
    monkeypatch.setattr(otlp_exporter, "Urllib3HTTPTransport", None)
    exporter = FastOTLPSpanExporter(endpoint=ENDPOINT)
    assert exporter.transport == "requests"
    assert isinstance(exporter._client._transport, RequestsHTTPTransport)
    exporter.shutdown()


def test_the_urllib3_transport_posts_and_the_sdk_retries(tmp_path: Path) -> None:
    """A real receiver: 503 then 200 (the SDK's retry), bodies and headers as sent."""
    statuses = [503, 200]
    seen: list[tuple[str, bytes, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, body, self.headers.get("X-Tenant")))
            self.send_response(statuses.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        exporter = FastOTLPSpanExporter(endpoint=url, headers={"X-Tenant": "t1"})
        exporter._client._compute_backoff = lambda retry: 0.01  # no second-long sleeps
        assert exporter.transport == "urllib3"
        result = exporter._client.export(b"payload")
        assert result.success and result.status_code == 200
        assert seen == [("/v1/traces", b"payload", "t1")] * 2
        exporter.shutdown()
    finally:
        server.shutdown()
        server.server_close()
