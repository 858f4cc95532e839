"""The pure parts of bench.instructions: reading callgrind totals, the cycle estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import (
    callgrind_counts,
    callgrind_total,
    cycle_estimate,
    private_cache_option,
)

CACHE_SIM_OUTPUT = """\
version: 1
creator: callgrind-3.19.0
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
fn=main
3 10 2 1
summary: 1000 300 100 7 20 10 3 4 5
totals: 1000 300 100 7 20 10 3 4 5
"""


def test_counts_are_read_by_event_name() -> None:
    counts = callgrind_counts(CACHE_SIM_OUTPUT)
    assert counts == {
        "Ir": 1000, "Dr": 300, "Dw": 100, "I1mr": 7, "D1mr": 20, "D1mw": 10,
        "ILmr": 3, "DLmr": 4, "DLmw": 5,
    }  # fmt: skip
    assert callgrind_total(CACHE_SIM_OUTPUT) == 1000


def test_plain_output_and_trailing_zero_events() -> None:
    assert callgrind_counts("events: Ir\ntotals: 42\n") == {"Ir": 42}
    # callgrind may leave trailing zero totals off the line.
    assert callgrind_counts("events: Ir D1mr DLmr\ntotals: 42 3\n") == {
        "Ir": 42,
        "D1mr": 3,
        "DLmr": 0,
    }


@pytest.mark.parametrize(
    "text", ["events: Ir\n", "totals: 5\nevents: Ir\n", "", "events: Ir\ntotals: 1 2\n"]
)
def test_malformed_output_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        callgrind_counts(text)


def test_cycle_estimate_weighs_misses() -> None:
    counts = {"Ir": 1000.0, "I1mr": 7.0, "D1mr": 20.0, "D1mw": 10.0, "ILmr": 3.0, "DLmr": 4.0}
    # 37 first-level misses at 10, 7 last-level misses at 100.
    assert cycle_estimate(counts) == 1000 + 370 + 700
    assert cycle_estimate({"Ir": 5.0}) == 5.0


def test_cycle_estimate_weighs_mispredicted_branches() -> None:
    # KCachegrind's weight: 10 per mispredicted branch, conditional or indirect.
    counts = {"Ir": 1000.0, "Bc": 200.0, "Bcm": 12.0, "Bi": 50.0, "Bim": 3.0, "D1mr": 1.0}
    assert cycle_estimate(counts) == 1000 + 150 + 10


def _cache_index(root: Path, name: str, level: str, kind: str, size: str) -> None:
    index = root / name
    index.mkdir()
    for field, value in {
        "level": level,
        "type": kind,
        "size": size,
        "ways_of_associativity": "8",
        "coherency_line_size": "64",
    }.items():
        (index / field).write_text(value + "\n")


def test_private_cache_option_is_the_level_2_cache(tmp_path: Path) -> None:
    _cache_index(tmp_path, "index0", "1", "Data", "32K")
    _cache_index(tmp_path, "index2", "2", "Unified", "1024K")
    _cache_index(tmp_path, "index3", "3", "Unified", "32768K")
    assert private_cache_option(tmp_path) == [f"--LL={1024 * 1024},8,64"]


def test_private_cache_option_without_sysfs_is_callgrinds_default(tmp_path: Path) -> None:
    assert private_cache_option(tmp_path / "missing") == []
    _cache_index(tmp_path, "index0", "1", "Data", "32K")
    assert private_cache_option(tmp_path) == []
