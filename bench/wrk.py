"""Running wrk and reading its report.

:func:`parse_wrk_output` is a pure function over wrk's text output (with
``--latency``), so it is tested without running anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$")
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.MULTILINE)


class WrkError(RuntimeError):
    """wrk could not run, or printed something that is not a report."""


@dataclass(frozen=True)
class WrkOptions:
    threads: int = 1
    connections: int = 64
    duration: float = 10.0
    """Seconds."""
    timeout: float = 2.0
    """Seconds after which wrk counts a request as a timeout error."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_sec: float
    requests: int
    duration_s: float
    latency_ms: dict[str, float]
    """Percentile label ("p50", "p75", "p90", "p99") → milliseconds."""
    socket_errors: dict[str, int] = field(default_factory=dict)
    """connect / read / write / timeout; all zero when wrk reported none."""
    non_2xx_3xx: int = 0

    @property
    def error_count(self) -> int:
        return self.non_2xx_3xx + sum(self.socket_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_per_sec": self.requests_per_sec,
            "requests": self.requests,
            "duration_s": self.duration_s,
            "latency_ms": dict(self.latency_ms),
            "socket_errors": dict(self.socket_errors),
            "non_2xx_3xx": self.non_2xx_3xx,
            "error_count": self.error_count,
        }


def _to_ms(value: str, unit: str) -> float:
    return round(float(value) * _TIME_UNITS_MS[unit], 6)


def _label(percent: str) -> str:
    number = float(percent)
    return f"p{number:g}"


def parse_wrk_output(text: str) -> WrkResult:
    """Read a wrk ``--latency`` report. Raises WrkError when it is not one."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None:
        raise WrkError(f"not a wrk report:\n{text.strip()}")
    latency: dict[str, float] = {}
    in_distribution = False
    for line in text.splitlines():
        if line.strip() == "Latency Distribution":
            in_distribution = True
            continue
        if in_distribution:
            match = _PERCENTILE.match(line)
            if match is None:
                break
            latency[_label(match.group(1))] = _to_ms(match.group(2), match.group(3))
    if not latency:
        raise WrkError(f"wrk report has no latency distribution (run with --latency):\n{text}")
    socket_errors = dict.fromkeys(("connect", "read", "write", "timeout"), 0)
    sock = _SOCKET.search(text)
    if sock is not None:
        socket_errors = dict(zip(socket_errors, map(int, sock.groups()), strict=True))
    non_2xx = _NON_2XX.search(text)
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        requests=int(total.group(1)),
        duration_s=_to_ms(total.group(2), total.group(3)) / 1000.0,
        latency_ms=latency,
        socket_errors=socket_errors,
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_argv(
    url: str,
    options: WrkOptions,
    headers: Mapping[str, str] | None = None,
    script: str | None = None,
) -> list[str]:
    binary = wrk_binary()
    if binary is None:
        raise WrkError("wrk not found on PATH (apt-get install wrk)")
    argv = [
        binary,
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{options.duration:g}s",
        f"--timeout={options.timeout:g}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", script]
    argv.append(url)
    return argv


def run_wrk(
    url: str,
    options: WrkOptions,
    headers: Mapping[str, str] | None = None,
    script: str | None = None,
) -> tuple[WrkResult, str]:
    """Run wrk to completion; return the parsed report and its raw text.

    wrk stays in our process group, so Ctrl-C reaches it too; subprocess.run
    kills it if we are interrupted while waiting. ``script`` is a wrk Lua
    script (``-s``), e.g. one that varies a header from request to request.
    """
    argv = wrk_argv(url, options, headers, script)
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=options.duration + options.timeout + 30,
        check=False,
    )
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}:\n{text.strip()}")
    return parse_wrk_output(text), text
