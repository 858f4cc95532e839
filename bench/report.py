"""The results of a run: the printed table and the JSON file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult


@dataclass
class Outcome:
    """One scenario's result: a wrk report, or why there is none."""

    name: str
    description: str
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    result: WrkResult | None = None
    failure: str | None = None
    cpu_us_per_request: float | None = None
    """User + system CPU microseconds the scenario's own processes (the proxy under
    test, not wrk, the upstream, Consul or Redis) spent per request while measured."""

    rounds: list[tuple[float, float | None]] = field(default_factory=list)
    """With ``--repeat``: (req/s, CPU µs per request) of every round, in order."""

    compare_with: str | None = None
    """The scenario this one's feature cost is measured against (see :func:`feature_costs`)."""

    @property
    def flagged(self) -> bool:
        """No result, or a result with errors: its numbers are not to be trusted."""
        return self.result is None or self.result.error_count > 0


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def combine_rounds(rounds: Sequence[Sequence[Outcome]]) -> list[Outcome]:
    """One outcome per scenario from several rounds of the same scenarios.

    A scenario that failed or had errors in any round is reported by that
    round (its numbers are not to be trusted). Otherwise the round with the
    median req/s stands for it (its latencies come with it), its CPU per
    request is the median of the rounds', and every round's figures are kept
    in :attr:`Outcome.rounds`.
    """
    by_name: dict[str, list[Outcome]] = {}
    for outcomes in rounds:
        for o in outcomes:
            by_name.setdefault(o.name, []).append(o)
    combined: list[Outcome] = []
    for runs in by_name.values():
        bad = next((o for o in runs if o.flagged), None)
        if bad is not None:
            combined.append(bad)
            continue
        ranked = sorted(runs, key=lambda o: o.result.requests_per_sec if o.result else 0.0)
        pick = ranked[(len(ranked) - 1) // 2]
        cpus = [o.cpu_us_per_request for o in runs if o.cpu_us_per_request is not None]
        combined.append(
            Outcome(
                pick.name,
                pick.description,
                pick.url,
                pick.headers,
                pick.result,
                cpu_us_per_request=_median(cpus) if cpus else None,
                rounds=[
                    (o.result.requests_per_sec if o.result else 0.0, o.cpu_us_per_request)
                    for o in runs
                ],
                compare_with=pick.compare_with,
            )
        )
    return combined


def ratios(outcomes: Sequence[Outcome], baseline: str) -> dict[str, float | None]:
    """req/s of each scenario over req/s of ``baseline``; None when either is missing."""
    base = next((o.result for o in outcomes if o.name == baseline and o.result), None)
    out: dict[str, float | None] = {}
    for o in outcomes:
        if base is None or o.result is None or base.requests_per_sec <= 0:
            out[o.name] = None
        else:
            out[o.name] = o.result.requests_per_sec / base.requests_per_sec
    return out


@dataclass(frozen=True)
class FeatureCost:
    """What a scenario's feature costs against the scenario it is compared with.

    ``throughput``: relative change in req/s (-0.12: 12 % fewer requests per
    second); ``cpu``: relative change in CPU per request (None without CPU
    figures). With several rounds each is the median of the rounds' own
    ratios: a scenario and its reference run in the same round, close in
    time, so a slow minute hits both and cancels out of their ratio.
    """

    against: str
    throughput: float
    cpu: float | None
    rounds: int


def feature_costs(outcomes: Sequence[Outcome]) -> dict[str, FeatureCost]:
    """Costs of every clean scenario whose reference also ran clean in the same run."""
    by_name = {o.name: o for o in outcomes}
    costs: dict[str, FeatureCost] = {}
    for o in outcomes:
        ref = by_name.get(o.compare_with) if o.compare_with else None
        if ref is None or o.flagged or ref.flagged or o.result is None or ref.result is None:
            continue
        pairs = list(zip(o.rounds, ref.rounds, strict=False))
        if len(o.rounds) < 2 or len(o.rounds) != len(ref.rounds):
            pairs = [
                (
                    (o.result.requests_per_sec, o.cpu_us_per_request),
                    (ref.result.requests_per_sec, ref.cpu_us_per_request),
                )
            ]
        if any(r_rps <= 0 for _, (r_rps, _) in pairs):
            continue
        throughput = _median([rps / r_rps - 1 for (rps, _), (r_rps, _) in pairs])
        cpus = [cpu / r_cpu - 1 for (_, cpu), (_, r_cpu) in pairs if cpu and r_cpu]
        costs[o.name] = FeatureCost(
            ref.name, throughput, _median(cpus) if len(cpus) == len(pairs) else None, len(pairs)
        )
    return costs


def format_costs(outcomes: Sequence[Outcome]) -> str:
    """The feature-cost table printed under the main one ("" when there is none)."""
    costs = feature_costs(outcomes)
    if not costs:
        return ""
    header = ["feature cost", "against", "req/s", "CPU/req"]
    rows = [
        [
            name,
            c.against,
            f"{c.throughput * 100:+.1f} %",
            "-" if c.cpu is None else f"{c.cpu * 100:+.1f} %",
        ]
        for name, c in costs.items()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    aligns = ["<", "<", ">", ">"]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths, strict=True))

    rounds = max(c.rounds for c in costs.values())
    note = f"(median of {rounds} paired rounds)" if rounds > 1 else "(one round)"
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows), note])


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def _errors(result: WrkResult) -> str:
    if result.error_count == 0:
        return "0"
    parts = [f"{k} {v}" for k, v in result.socket_errors.items() if v]
    if result.non_2xx_3xx:
        parts.append(f"non-2xx/3xx {result.non_2xx_3xx}")
    return f"{result.error_count} ({', '.join(parts)})"


def format_table(outcomes: Sequence[Outcome], baseline: str) -> str:
    ratio = ratios(outcomes, baseline)
    header = ["scenario", "req/s", "p50", "p99", "errors", f"vs {baseline}", "CPU/req"]
    rows: list[list[str]] = []
    for o in outcomes:
        if o.result is None:
            rows.append([o.name, "FAILED", "-", "-", "-", "-", "-"])
            continue
        r = ratio[o.name]
        rows.append(
            [
                o.name + (" !" if o.flagged else ""),
                f"{o.result.requests_per_sec:,.0f}",
                _ms(o.result.latency_ms.get("p50")),
                _ms(o.result.latency_ms.get("p99")),
                _errors(o.result),
                "-" if r is None else f"{r:.2f}x",
                "-" if o.cpu_us_per_request is None else f"{o.cpu_us_per_request:.0f} µs",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    # Names left-aligned, numbers right-aligned.
    aligns = ["<", ">", ">", ">", ">", ">", ">"]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths, strict=True))

    out = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    notes = [
        f"! {o.name}: " + (o.failure.splitlines()[0] if o.failure else "requests failed")
        for o in outcomes
        if o.flagged
    ]
    return "\n".join(out + (["", *notes] if notes else []))


def results_document(
    outcomes: Sequence[Outcome], baseline: str, meta: Mapping[str, Any]
) -> dict[str, Any]:
    ratio = ratios(outcomes, baseline)
    costs = feature_costs(outcomes)
    scenarios = []
    for o in outcomes:
        entry: dict[str, Any] = {
            "name": o.name,
            "description": o.description,
            "url": o.url,
            "header_names": sorted(o.headers),  # values may be credentials
            "ok": o.result is not None,
            "flagged": o.flagged,
            "failure": o.failure,
            f"ratio_to_{baseline}": ratio[o.name],
            "cpu_us_per_request": o.cpu_us_per_request,
        }
        cost = costs.get(o.name)
        if cost is not None:
            entry["cost"] = {
                "against": cost.against,
                "requests_per_sec_change": cost.throughput,
                "cpu_per_request_change": cost.cpu,
                "paired_rounds": cost.rounds,
            }
        if len(o.rounds) > 1:
            entry["rounds"] = [
                {"requests_per_sec": rps, "cpu_us_per_request": cpu} for rps, cpu in o.rounds
            ]
        if o.result is not None:
            entry.update(o.result.as_dict())
        scenarios.append(entry)
    return {**meta, "baseline": baseline, "scenarios": scenarios}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
