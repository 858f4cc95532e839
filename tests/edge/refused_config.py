"""One check for every test of a bad edge config file: refused, naming file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_config
from mesh.config.errors import ConfigError


def assert_refused(tmp_path: Path, text: str, key_path: str, problem: str) -> None:
    """Loading an edge config file holding ``text`` raises ConfigError whose key path is
    ``key_path`` ("" for the file as a whole) and whose message names the file and has
    ``problem`` in it."""
    path = tmp_path / "edge.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_edge_config(path)
    message = str(caught.value)
    assert message.startswith(f"invalid configuration in {path}"), message
    assert caught.value.key_path == key_path, message
    assert problem in message, message
