"""wrk's text report → numbers (no processes started)."""

from __future__ import annotations

import pytest

from bench.report import Outcome, format_table, ratios
from bench.wrk import WrkError, WrkOptions, WrkResult, parse_wrk_output, wrk_argv

CLEAN = """\
Running 10s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   532.05us  598.12us   9.18ms   95.85%
    Req/Sec    95.93k    20.82k  144.63k    60.00%
  Latency Distribution
     50%  413.00us
     75%  655.00us
     90%  773.00us
     99%    3.60ms
  190792 requests in 2.00s, 30.02MB read
Requests/sec:  95284.56
Transfer/sec:     14.99MB
"""

WITH_ERRORS = """\
Running 10s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    70.12ms  300.00ms   2.00s    97.00%
    Req/Sec     2.10k   300.00     3.00k    70.00%
  Latency Distribution
     50%   15.20ms
     75%   20.00ms
     90%   40.00ms
     99%    1.20s
  21000 requests in 10.01s, 3.00MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:   2097.90
Transfer/sec:    306.00KB
"""


def test_clean_report() -> None:
    r = parse_wrk_output(CLEAN)
    assert r.requests_per_sec == 95284.56
    assert r.requests == 190792
    assert r.duration_s == 2.0
    assert r.latency_ms == {"p50": 0.413, "p75": 0.655, "p90": 0.773, "p99": 3.6}
    assert r.error_count == 0
    assert r.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}


def test_errors_are_counted() -> None:
    r = parse_wrk_output(WITH_ERRORS)
    assert r.latency_ms["p99"] == 1200.0
    assert r.socket_errors == {"connect": 0, "read": 12, "write": 0, "timeout": 3}
    assert r.non_2xx_3xx == 5
    assert r.error_count == 20


@pytest.mark.parametrize(
    "text",
    [
        "unable to connect to 127.0.0.1:1 Connection refused\n",
        CLEAN.replace("Latency Distribution", "").replace("     50%  413.00us\n", ""),
        "",
    ],
)
def test_not_a_report(text: str) -> None:
    with pytest.raises(WrkError):
        parse_wrk_output(text)


def test_argv_carries_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.wrk.wrk_binary", lambda: "/usr/bin/wrk")
    argv = wrk_argv("http://x/", WrkOptions(2, 32, 1.5), {"Authorization": "Bearer t"})
    assert argv[:4] == ["/usr/bin/wrk", "-t2", "-c32", "-d1.5s"]
    assert "--latency" in argv
    assert argv[-3:] == ["-H", "Authorization: Bearer t", "http://x/"]
    scripted = wrk_argv("http://x/", WrkOptions(), script="/w/many-callers.lua")
    assert scripted[-3:] == ["-s", "/w/many-callers.lua", "http://x/"]


def test_ratios_and_flags_in_table() -> None:
    clean, errors = parse_wrk_output(CLEAN), parse_wrk_output(WITH_ERRORS)
    outcomes = [
        Outcome("nginx", "", result=clean),
        Outcome("edge", "", result=errors),
        Outcome("broken", "", failure="ScenarioFailed: edge exited"),
    ]
    r = ratios(outcomes, "nginx")
    assert r["nginx"] == 1.0
    assert r["edge"] == pytest.approx(2097.90 / 95284.56)
    assert r["broken"] is None
    table = format_table(outcomes, "nginx")
    assert "edge !" in table and "FAILED" in table
    assert "! broken: ScenarioFailed: edge exited" in table


def test_no_baseline_means_no_ratio() -> None:
    result = WrkResult(1000.0, 1000, 1.0, {"p50": 1.0, "p99": 2.0})
    assert ratios([Outcome("edge", "", result=result)], "nginx") == {"edge": None}
