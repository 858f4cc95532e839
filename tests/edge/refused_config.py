"""One check for every test of a bad config file: refused, naming file, key and problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.config import load_edge_config
from mesh.config.errors import ConfigError


def assert_refused(
    tmp_path: Path,
    text: str,
    key_path: str,
    problem: str,
    load: Callable[[Path], object] = load_edge_config,
) -> None:
    """Loading a config file holding ``text`` with ``load`` (an edge's, by default) raises
    ConfigError whose key path is ``key_path`` ("" for the file as a whole) and whose
    message names the file and has ``problem`` in it."""
    path = tmp_path / "config.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration in {path}"), message
    assert caught.value.key_path == key_path, message
    assert problem in message, message
