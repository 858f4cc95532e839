"""The exporter's session: the environment read once, as requests would read it per request."""

from __future__ import annotations

import pytest
import requests

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
