"""The benchmark harness end to end: one short scenario, parseable results.

Asserts nothing about speed, only that a run produces a well-formed result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.instructions import callgrind_total
from bench.proxies import haproxy_binary, nginx_binary
from bench.slow_clients import PER_ADDRESS_LIMIT, PER_ADDRESS_TARGET
from bench.wrk import wrk_binary
from demo.processes import PROJECT_ROOT

pytestmark = [
    pytest.mark.skipif(wrk_binary() is None, reason="wrk is not installed (apt-get install wrk)"),
    pytest.mark.skipif(
        nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)"
    ),
]


def _bench(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m bench.<module> args...`` from the project root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _short_count(
    tmp_path: Path, module: str, scenario: str, *extra: str
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """``bench.<module>`` (instructions or opcodes) of ``scenario`` for a 2 s window after
    1 s of warm-up at 4 connections, ``extra`` arguments added: its one row and run."""
    out = tmp_path / f"{module}.json"
    done = _bench(
        module,
        *("--seconds", "2", "--warmup", "1", "--connections", "4"),
        *extra,
        *("--json-out", str(out), scenario),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [row] = json.loads(out.read_text())["scenarios"]
    assert row["name"] == scenario
    assert row["requests"] > 0 and row["errors"] == 0
    return row, done


def _run_one_second(
    tmp_path: Path, scenarios: str, timeout: float
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``bench.run`` of ``scenarios`` for 1 s each, no warm-up: its results file and run."""
    out = tmp_path / "results.json"
    done = _bench(
        "run",
        *("--duration", "1", "--warmup", "0", "--scenarios", scenarios),
        *("--json-out", str(out), "--workdir", str(tmp_path / "work")),
        timeout=timeout,
    )
    return out, done


def test_one_second_upstream_run_writes_parseable_results(tmp_path: Path) -> None:
    out, done = _run_one_second(tmp_path, "upstream", timeout=90)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "upstream" in done.stdout and "req/s" in done.stdout
    document = json.loads(out.read_text())
    assert document["baseline"] == "nginx"
    assert document["wrk"]["duration_s"] == 1
    [scenario] = document["scenarios"]
    assert scenario["name"] == "upstream"
    assert scenario["ok"], scenario["failure"]
    assert scenario["requests"] > 0
    assert set(scenario["latency_ms"]) >= {"p50", "p90", "p99"}
    assert isinstance(scenario["error_count"], int)
    assert scenario["ratio_to_nginx"] is None  # nginx was not part of this run


@pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("callgrind_control") is None,
    reason="valgrind is not installed (apt-get install valgrind)",
)
def test_instruction_count_of_a_short_edge_run(tmp_path: Path) -> None:
    row, _ = _short_count(
        tmp_path,
        "instructions",
        "edge+notrace",
        *("--idle-seconds", "1", "--settle-seconds", "1", "--branch-sim"),
        *("--keep", str(tmp_path / "kept")),
    )
    # A proxied request is hundreds of thousands of interpreter instructions, never a handful.
    assert 50_000 < row["instructions_per_request"] < 50_000_000
    # Background work was counted in the idle window and taken out, not added.
    assert row["background_per_request"] >= 0
    # --branch-sim: an interpreter mispredicts some of its branches, and the estimate weighs them.
    assert row["mispredicts_per_request"] > 0
    assert row["cycle_estimate_per_request"] > row["instructions_per_request"]
    # --keep: the measured window's callgrind files, which hold at least what the requests
    # were charged (the window's background is in them too).
    kept = sorted((tmp_path / "kept" / "edge+notrace").iterdir())
    assert kept
    window = sum(callgrind_total(f.read_text()) for f in kept)
    charged = row["instructions_per_request"] * row["requests"]
    assert window >= charged * (1 - 1e-9)  # float division and back: allow its rounding


def test_bytecode_count_of_a_short_edge_run(tmp_path: Path) -> None:
    row, done = _short_count(tmp_path, "opcodes", "edge+notrace")
    # A proxied request is thousands of bytecodes in meshgate and aiohttp, never a handful.
    assert 500 < row["bytecodes_per_request"] < 100_000
    # Every request passes through the ingress (a coroutine: entered at least once).
    [ingress] = [v for k, v in row["functions"].items() if k.startswith("Ingress.__call__  ")]
    assert ingress["entries"] >= 1
    assert "Ingress.__call__" in done.stdout  # the single scenario's top functions, printed


def test_paired_runs_start_afresh_and_pool(tmp_path: Path) -> None:
    """bench.ab --runs 2: two runs of one round each, pooled; each run's own result kept."""
    out = tmp_path / "ab.json"
    done = _bench(
        "ab",
        "nginx",
        "nginx",
        "--runs",
        "2",
        "--rounds",
        "2",
        "--duration",
        "1",
        "--warmup",
        "1",
        "--json-out",
        str(out),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run 1/2" in done.stdout and "run 2/2" in done.stdout
    assert "2 runs pooled" in done.stdout
    # Each run started its own nginx pair: four proxies started in all.
    assert done.stdout.count("nginx: starting") == 4
    document = json.loads(out.read_text())
    assert document["rounds"] == 4  # both runs' rounds, pooled
    assert len(document["runs"]) == 2 and len(document["run_medians"]) == 2
    assert [run["rounds"] for run in document["runs"]] == [2, 2]
    assert len(document["bursts"]["a"]) == len(document["bursts"]["b"]) == 4
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        # Pinned as bench.run pins: both proxies alone on the first CPU, and the
        # bench itself (so wrk and the upstream it starts) kept off it.
        for run in document["runs"]:
            assert run["pinning"] == {"edges": cpus[:1], "others": cpus[1:]}


def test_slow_clients_against_the_per_address_edge(tmp_path: Path) -> None:
    """300 slowloris connections from one address against an edge allowing 256 per
    address: the bench counts 44 refused and 256 held, and wrk's traffic (another
    address) is still served."""
    out = tmp_path / "slow.json"
    done = _bench(
        "slow_clients",
        "--targets",
        PER_ADDRESS_TARGET,
        "--slow",
        "300",
        "--hold",
        "3",
        "--duration",
        "1",
        "--json-out",
        str(out),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [row] = json.loads(out.read_text())["targets"]
    assert row["name"] == PER_ADDRESS_TARGET
    assert row["slow_opened"] == 300 and row["slow_failed_to_connect"] == 0
    assert row["slow_refused"] == 300 - PER_ADDRESS_LIMIT
    assert row["slow_still_held_at_end"] == PER_ADDRESS_LIMIT  # the idle timeout is 60 s
    assert row["during"]["requests"] > 0 and row["during"]["error_count"] == 0
    assert PER_ADDRESS_TARGET in done.stdout  # the table


@pytest.mark.parametrize("tool", ["slow_clients", "websocket"])
def test_an_unknown_target_is_a_usage_error(tool: str) -> None:
    done = _bench(tool, "--targets", "edge,squid", timeout=60)
    assert done.returncode == 2
    assert "unknown target(s): squid" in done.stderr


@pytest.mark.skipif(
    haproxy_binary() is None, reason="haproxy is not installed (apt-get install haproxy)"
)
def test_websocket_echo_through_every_target(tmp_path: Path) -> None:
    """bench.websocket with 4 connections for 1 s: every target (direct, nginx, HAProxy,
    the edge) completes round trips, every echo checked, with no error."""
    out = tmp_path / "websocket.json"
    done = _bench(
        "websocket",
        "--connections",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0.5",
        "--json-out",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())
    assert document["connections"] == 4 and document["duration_s"] == 1
    rows = {row["name"]: row for row in document["targets"]}
    assert list(rows) == ["direct", "nginx", "haproxy", "edge"]
    for name, row in rows.items():
        assert "failure" not in row, f"{name}: {row.get('failure')}"
        assert row["connected"] == 4, name
        assert row["messages"] > 0, name
        assert row["errors"] == 0, f"{name}: {row['error_kinds']}"
        assert set(row["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert rows["nginx"]["ratio_to_nginx"] == 1.0
    assert rows["haproxy"]["ratio_to_haproxy"] == 1.0
    # CPU per message is the proxy's own: none without one, some through the edge.
    assert rows["direct"]["cpu_us_per_message"] is None
    assert rows["edge"]["cpu_us_per_message"] > 0
    assert "msgs/s" in done.stdout and "edge" in done.stdout  # the table


def test_compression_scenarios_measure_what_they_name(tmp_path: Path) -> None:
    """nginx+gzip, edge+big and edge+gzip for 1 s: each starts (which checks its answer's
    encoding and decoded size) and is loaded without error."""
    out, done = _run_one_second(tmp_path, "nginx+gzip,edge+big,edge+gzip", timeout=180)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["scenarios"]}
    assert list(rows) == ["nginx+gzip", "edge+big", "edge+gzip"]
    for name, row in rows.items():
        assert row["ok"], f"{name}: {row['failure']}"
        assert row["requests"] > 0 and row["error_count"] == 0, name


def test_cache_scenarios_measure_hits(tmp_path: Path) -> None:
    """nginx+cache and edge+cache-hit for 1 s: each starts (which checks that its answers
    are cache hits: X-Cache-Status HIT, Cache-Status meshgate; hit) and is loaded without
    error, its cost reported against its plain counterpart."""
    names = "nginx,nginx+cache,edge,edge+cache-hit"
    out, done = _run_one_second(tmp_path, names, timeout=240)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["scenarios"]}
    assert list(rows) == names.split(",")
    for name, row in rows.items():
        assert row["ok"], f"{name}: {row['failure']}"
        assert row["requests"] > 0 and row["error_count"] == 0, name
    assert rows["nginx+cache"]["cost"]["against"] == "nginx"
    assert rows["edge+cache-hit"]["cost"]["against"] == "edge"


def test_mutual_tls_scenarios_measure_what_they_name(tmp_path: Path) -> None:
    """The two-hop scenarios, plain and over mutual TLS, for 1 s each. Clean runs mean
    the TLS hops were TLS: the mesh's scenarios set ``mesh_tls.require`` (a plain hop
    would be refused, 502) and the back nginx takes only clients with a certificate."""
    names = "nginx+nginx,nginx+nginx+mtls,edge+sidecar,edge+sidecar+mtls"
    out, done = _run_one_second(tmp_path, names, timeout=240)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["scenarios"]}
    assert list(rows) == names.split(",")
    for name, row in rows.items():
        assert row["ok"], f"{name}: {row['failure']}"
        assert row["requests"] > 0 and row["error_count"] == 0, name
    assert rows["nginx+nginx+mtls"]["cost"]["against"] == "nginx+nginx"
    assert rows["edge+sidecar+mtls"]["cost"]["against"] == "edge+sidecar"


def test_connection_setup_measures_every_target(tmp_path: Path) -> None:
    """Each target completes mutual-TLS (or plain) connections and its server CPU is
    read; the sniffing listener serves both kinds of client."""
    out = tmp_path / "connections.json"
    done = _bench(
        "connection_setup",
        *("--duration", "0.5", "--rounds", "1", "--clients", "2", "--json-out", str(out)),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    median = json.loads(out.read_text())["median"]
    assert set(median) == {
        "nginx-mtls",
        "meshgate-mtls",
        "meshgate-mtls-sniffing",
        "meshgate-plain-sniffing",
        "meshgate-plain",
    }
    for name, figures in median.items():
        assert figures["connections_per_sec"] > 0, name
        assert figures["cpu_us_per_connection"] > 0, name
    assert "meshgate-mtls-sniffing" in done.stdout


def test_ext_authz_scenario_runs_clean(tmp_path: Path) -> None:
    """edge+extauthz for 1 s: its authorization service (the upstream, registered again)
    allows every request, so every answer is the upstream's (a failed check would be a
    503, counted as an error), and its cost is reported against the edge."""
    out, done = _run_one_second(tmp_path, "edge,edge+extauthz", timeout=180)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["scenarios"]}
    row = rows["edge+extauthz"]
    assert row["ok"], row["failure"]
    assert row["requests"] > 0 and row["error_count"] == 0
    assert row["cost"]["against"] == "edge"


def test_sidecar_scenarios_run_clean(tmp_path: Path) -> None:
    """sidecar-out and its affinity and canary variants, and sidecar-in, for 1 s each:
    every call goes through the sidecar's outbound listener to the upstream, or through
    its inbound one to its app (a refused or misrouted call would be a 404 or 503,
    counted as an error), each variant's cost reported against sidecar-out, and
    sidecar-out's and sidecar-in's against the edge."""
    names = "edge,sidecar-out,sidecar-out+hash,sidecar-out+canary,sidecar-in"
    out, done = _run_one_second(tmp_path, names, timeout=240)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())["scenarios"]}
    for name in names.split(",")[1:]:
        row = rows[name]
        assert row["ok"], row["failure"]
        assert row["requests"] > 0 and row["error_count"] == 0
    assert rows["sidecar-out"]["cost"]["against"] == "edge"
    assert rows["sidecar-out+hash"]["cost"]["against"] == "sidecar-out"
    assert rows["sidecar-out+canary"]["cost"]["against"] == "sidecar-out"
    assert rows["sidecar-in"]["cost"]["against"] == "edge"


def test_the_instructions_of_a_sidecar_outbound_run_are_the_sidecars(tmp_path: Path) -> None:
    """bench.instructions measures an outbound scenario's sidecar (its process under
    valgrind), not the edge it has none of."""
    row, _ = _short_count(
        tmp_path, "instructions", "sidecar-out", "--idle-seconds", "0", "--settle-seconds", "1"
    )
    assert 50_000 < row["instructions_per_request"] < 50_000_000
