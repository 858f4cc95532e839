"""/metrics in multiprocess mode: any process reports every process's values."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from demo.processes import PROJECT_ROOT
from mesh.telemetry.exposition import exposition, multiprocess_enabled

# In a fresh interpreter: switching modes is for the whole process.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    from mesh.telemetry.exposition import enable_multiprocess, exposition, multiprocess_enabled
    from prometheus_client import CollectorRegistry, Counter, Gauge

    enable_multiprocess(sys.argv[1])
    assert multiprocess_enabled()
    children = []
    for i in range(2):
        pid = os.fork()
        if pid == 0:
            registry = CollectorRegistry()
            counter = Counter("meshgate_test", "t", ["role"], registry=registry)
            counter.labels("edge").inc(3 + i)
            age = Gauge("meshgate_test_age", "a", registry=registry, multiprocess_mode="max")
            age.set(10 * (i + 1))
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    sys.stdout.write(exposition(CollectorRegistry())("")[0].decode())
    """
)


def test_workers_values_are_aggregated(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(done.stdout)
        for s in family.samples
    }
    assert values[("meshgate_test_total", (("role", "edge"),))] == 7  # 3 + 4
    assert values[("meshgate_test_age", ())] == 20  # the largest
    assert len(list(tmp_path.glob("*.db"))) >= 2  # one file per process and kind


def test_single_process_mode_renders_the_registry() -> None:
    assert not multiprocess_enabled()
    registry = CollectorRegistry()
    Counter("meshgate_single", "s", registry=registry).inc()
    calls: list[int] = []
    body = exposition(registry, [lambda: calls.append(1)])("")[0].decode()
    assert "meshgate_single_total 1.0" in body
    assert calls == [1]


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("*/*", False),
        ("text/plain", False),
        ("application/openmetrics-text", True),
        # What Prometheus sends: OpenMetrics first.
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            True,
        ),
    ],
)
def test_the_format_follows_accept(accept: str, openmetrics: bool) -> None:
    registry = CollectorRegistry()
    Counter("meshgate_single", "s", registry=registry).inc()
    body, content_type = exposition(registry)(accept)
    assert content_type.startswith("application/openmetrics-text" if openmetrics else "text/plain")
    assert body.decode().endswith("# EOF\n") is openmetrics
    assert "meshgate_single_total 1.0" in body.decode()
