"""``meshgate edge --check`` / ``meshgate sidecar --check`` (meshgate/check_command.py):
exit 0 naming what was checked, or 2 with the line a start prints; nothing contacted,
bound or written. Run as the real command, as a deploy pipeline would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trustme
import yaml

from demo.processes import PROJECT_ROOT, meshgate_argv
from mesh.identity.keys import generate_signing_key, public_key_pem, signing_key_pem

# Consul and Redis on ports where nothing listens: a check must not need them.
UNREACHABLE = "consul: {address: 127.0.0.1:1}\n"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        meshgate_argv(*args), capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT
    )


def check(role: str, config: Path) -> subprocess.CompletedProcess[str]:
    return run(role, "--config", str(config), "--check")


def one_line(result: subprocess.CompletedProcess[str], stream: str) -> str:
    lines = getattr(result, stream).strip().splitlines()
    assert len(lines) == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return str(lines[0])


@pytest.mark.parametrize(
    ("role", "example", "named"),
    [
        ("edge", "edge.yaml", "(5 routes)"),
        ("edge", "edge-static.yaml", "(1 route, the static catalog (2 services))"),
        ("sidecar", "sidecar.yaml", "(service orders)"),
    ],
)
def test_the_shipped_examples_are_valid(role: str, example: str, named: str) -> None:
    config = PROJECT_ROOT / "deploy" / "examples" / example
    result = check(role, config)
    assert result.returncode == 0
    assert one_line(result, "stdout") == (
        f"meshgate: {config}: the {role} configuration is valid {named}"
    )


def test_the_files_named_are_read_and_listed(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("edge.example")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "edge.pem"))
    (tmp_path / "identity.pem").write_bytes(signing_key_pem(generate_signing_key("ES256")))
    log = tmp_path / "logs" / "access.jsonl"
    log.parent.mkdir()
    config = tmp_path / "edge.yaml"
    config.write_text(
        UNREACHABLE
        + f"tls: {{cert_file: {tmp_path}/edge.pem, key_file: {tmp_path}/edge.pem}}\n"
        + f"auth: {{identity: {{token: {{signing_key_file: {tmp_path}/identity.pem}}}}}}\n"
        + f"telemetry: {{access_log: {{path: {log}}}}}\n"
    )
    result = check("edge", config)
    assert result.returncode == 0, result.stderr
    assert one_line(result, "stdout").endswith(
        "(0 routes, the TLS certificate and key, the identity signing key, "
        f"the access log file {log})"
    )
    assert not log.exists()  # checked, not created


def test_every_tls_certificate_is_loaded_and_their_names_checked(tmp_path: Path) -> None:
    ca = trustme.CA()
    for stem, name in [("edge", "edge.test"), ("api", "api.test"), ("twin", "api.test")]:
        ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(f"{tmp_path}/{stem}.pem")
    config = tmp_path / "edge.yaml"

    def tls(*stems: str) -> str:
        listed = ", ".join(f"{{cert_file: {tmp_path}/{s}.pem, key_file: {tmp_path}/{s}.pem}}"
                           for s in stems)  # fmt: skip
        pair = f"cert_file: {tmp_path}/edge.pem, key_file: {tmp_path}/edge.pem"
        return f"{UNREACHABLE}tls: {{{pair}, certificates: [{listed}]}}\n"

    config.write_text(tls("api"))
    result = check("edge", config)
    assert result.returncode == 0, result.stderr
    assert "(0 routes, 2 TLS certificates)" in one_line(result, "stdout")
    config.write_text(tls("api", "twin"))  # two certificates for api.test
    result = check("edge", config)
    assert result.returncode == 2
    assert one_line(result, "stderr") == (
        f"meshgate: invalid configuration in {tmp_path}/twin.pem: the certificate is chosen "
        f"for api.test, as {tmp_path}/api.pem is: give one of them server_names without it"
    )


@pytest.mark.parametrize(
    ("text", "named", "problem"),
    [
        ("tls: {cert_file: {d}/none.pem, key_file: {d}/none.pem}\n", "{d}/none.pem",
         "TLS file not found"),
        ("tls: {cert_file: {d}/junk.pem, key_file: {d}/junk.pem}\n", "{d}/junk.pem",
         "cannot load the TLS certificate and key"),
        ("auth: {identity: {token: {signing_key_file: {d}/junk.pem}}}\n", "{d}/junk.pem",
         "identity signing key"),
        ("telemetry: {access_log: {path: {d}/no/such/dir/access.log}}\n",
         "{d}/no/such/dir/access.log: telemetry.access_log.path",
         "cannot open the access log: No such file or directory"),
        ("telemetry: {access_log: {path: {d}}}\n", "{d}: telemetry.access_log.path",
         "cannot open the access log: Is a directory"),
        ("discovery: {provider: static, static_file: {d}/catalog.yaml}\n",
         "{d}/catalog.yaml: services.users[0].port", "less than or equal to 65535"),
    ],
)  # fmt: skip
def test_a_file_that_would_stop_the_start_exits_2_naming_it(
    tmp_path: Path, text: str, named: str, problem: str
) -> None:
    (tmp_path / "junk.pem").write_text("not a PEM file\n")
    (tmp_path / "catalog.yaml").write_text("services:\n  users:\n    - {address: a, port: 70000}\n")
    config = tmp_path / "edge.yaml"
    config.write_text(UNREACHABLE + text.replace("{d}", str(tmp_path)))
    result = check("edge", config)
    assert result.returncode == 2
    line = one_line(result, "stderr")
    assert line.startswith(
        f"meshgate: invalid configuration in {named.replace('{d}', str(tmp_path))}"
    )
    assert problem in line
    assert result.stdout == ""


def test_the_admin_token_is_read_and_listed(tmp_path: Path) -> None:
    token = tmp_path / "admin-token"
    token.write_text("3f9a1c0e5b7d2a4f6e8c0b1d3a5f7e9c\n")
    config = tmp_path / "edge.yaml"
    config.write_text(UNREACHABLE + f"admin: {{token_file: {token}}}\n")
    result = check("edge", config)
    assert result.returncode == 0, result.stderr
    assert one_line(result, "stdout").endswith("(0 routes, the admin token)")
    sidecar = tmp_path / "sidecar.yaml"
    sidecar.write_text(
        UNREACHABLE + "service: {name: users}\nadmin: {token_env: MESHGATE_TEST_ADMIN_TOKEN}\n"
    )
    result = check("sidecar", sidecar)
    assert result.returncode == 2  # the variable is not set
    assert one_line(result, "stderr") == (
        f"meshgate: invalid configuration in {sidecar}: admin.token_env: "
        "the environment variable MESHGATE_TEST_ADMIN_TOKEN is not set"
    )
    token.write_text("")
    result = check("edge", config)
    assert result.returncode == 2
    assert one_line(result, "stderr") == (
        f"meshgate: invalid configuration in {config}: admin.token_file: the file {token} is empty"
    )


def test_a_bad_file_gets_the_same_line_as_a_start(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("routes:\n  - prefix: api\n    service: users\n")
    checked, started = check("edge", config), run("edge", "--config", str(config))
    assert checked.returncode == started.returncode == 2
    assert one_line(checked, "stderr") == one_line(started, "stderr")
    assert "routes[0].prefix: must start with '/'" in checked.stderr


def test_workers_need_fixed_ports_and_a_shared_signing_key(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("listen: {port: 0}\n")
    result = run("edge", "--config", str(config), "--workers", "2", "--check")
    assert result.returncode == 2
    assert "several workers need fixed ports" in one_line(result, "stderr")


def test_a_sidecar_checks_the_edges_public_key(tmp_path: Path) -> None:
    example = yaml.safe_load((PROJECT_ROOT / "deploy" / "examples" / "sidecar.yaml").read_text())
    example["identity"]["edge_public_key_file"] = f"{tmp_path}/edge.pub"
    key = generate_signing_key("ES256")
    (tmp_path / "edge.pub").write_bytes(public_key_pem(key.public_key()))
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump(example))
    result = check("sidecar", config)
    assert result.returncode == 0, result.stderr
    assert one_line(result, "stdout").endswith("(service orders, the edge's public key)")

    (tmp_path / "edge.pub").write_text("not a key\n")
    result = check("sidecar", config)
    assert result.returncode == 2
    line = one_line(result, "stderr")
    assert line.startswith(f"meshgate: invalid configuration in {tmp_path}/edge.pub: edge public")


def test_consul_over_https_needs_a_ca_and_certificate_that_load(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a PEM file\n")
    config = tmp_path / "edge.yaml"
    config.write_text(f"consul: {{address: 'https://127.0.0.1:1', ca_file: {tmp_path}/junk.pem}}\n")
    result = check("edge", config)
    assert result.returncode == 2
    assert one_line(result, "stderr").startswith(
        f"meshgate: invalid configuration in {tmp_path}/junk.pem: "
        "consul.ca_file: cannot load the CA"
    )
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config.write_text(f"consul: {{address: 'https://127.0.0.1:1', ca_file: {tmp_path}/ca.pem}}\n")
    result = check("edge", config)
    assert result.returncode == 0, result.stderr
    assert one_line(result, "stdout").endswith("(0 routes, Consul's CA)")
