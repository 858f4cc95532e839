"""The ``mesh_tls`` sections: what they refuse, naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import load_sidecar_config
from tests.edge.refused_config import assert_refused

STATIC = "discovery: {provider: static, static_file: catalog.yaml}"
PROBLEMS = [
    (
        f"mesh_tls: {{enabled: true}}\n{STATIC}",
        "",
        "mesh_tls.enabled: mesh TLS takes its certificates from Consul's Connect CA, "
        "so it needs discovery.provider: consul",
    ),
    (
        "mesh_tls: {enabled: true}\nproxy: {transport: aiohttp}",
        "",
        "mesh_tls.enabled: mesh TLS needs proxy.transport: fast",
    ),
    ("mesh_tls: {enabled: yes please}", "mesh_tls.enabled", "valid boolean"),
    (
        "mesh_tls: {enabled: true, initial_fetch_timeout: 0}",
        "mesh_tls.initial_fetch_timeout",
        "longer than 0",
    ),
    ("mesh_tls: {verify: false}", "mesh_tls.verify", "unknown key"),
]


@pytest.mark.parametrize(("text", "key_path", "problem"), PROBLEMS)
def test_the_edge_refuses(tmp_path: Path, text: str, key_path: str, problem: str) -> None:
    assert_refused(tmp_path, text, key_path, problem)


def test_the_edge_refuses_a_service_name_consul_would_not_take(tmp_path: Path) -> None:
    assert_refused(tmp_path, "mesh_tls: {service: 'my edge'}", "mesh_tls.service", "pattern")


@pytest.mark.parametrize(
    ("text", "key_path", "problem"),
    [
        *PROBLEMS,
        ("mesh_tls: {default_intention: maybe}", "mesh_tls.default_intention", "'allow' or 'deny'"),
        ("mesh_tls: {mode: lenient}", "mesh_tls.mode", "'strict' or 'permissive'"),
        # The sidecar's certificate is its service's; no other name can be asked for.
        ("mesh_tls: {service: other}", "mesh_tls.service", "unknown key"),
    ],
)
def test_the_sidecar_refuses(tmp_path: Path, text: str, key_path: str, problem: str) -> None:
    text = f"service: {{name: users}}\n{text}"
    assert_refused(tmp_path, text, key_path, problem, load=load_sidecar_config)


def test_defaults_are_off_lenient_and_strict_with_plain_callers(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text("service: {name: users}\nmesh_tls: {enabled: true}\n")
    m = load_sidecar_config(path).mesh_tls
    assert (m.enabled, m.require, m.default_intention, m.mode) == (True, False, "allow", "strict")
