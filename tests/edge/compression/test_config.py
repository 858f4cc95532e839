"""The ``compression`` section: defaults that load, patterns refused with their key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.compression.config import DEFAULT_CONTENT_TYPES, CompressionConfig
from edge.config import load_edge_config
from mesh.http.compression import check_pattern
from tests.edge.refused_config import assert_refused


def test_defaults_are_valid_patterns_and_leave_event_streams_out() -> None:
    config = CompressionConfig()
    assert config.min_size == 1024
    assert all(check_pattern(p) is None for p in DEFAULT_CONTENT_TYPES)
    assert "text/event-stream" not in config.content_types


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ("{content_types: ['text/*']}", "compression.content_types", "text/event-stream"),
        ("{content_types: [json]}", "compression.content_types", "is not a media type"),
        ("{content_types: []}", "compression.content_types", "at least 1"),
        ("{min_size: 0}", "compression.min_size", "at least 1 byte"),
        ("{level: 0}", "compression.level", "greater than or equal to 1"),
        ("{level: 10}", "compression.level", "less than or equal to 9"),
        ("{speed: 9}", "compression.speed", "unknown key"),
    ],
)
def test_bad_sections_name_the_key(tmp_path: Path, section: str, key: str, problem: str) -> None:
    assert_refused(tmp_path, f"compression: {section}", key, problem)


def test_min_size_takes_units(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("compression: {min_size: 4KiB}\n")
    config = load_edge_config(path).compression
    assert config is not None and config.min_size == 4096
