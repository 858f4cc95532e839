"""Read a YAML file, substitute variables, validate it into a frozen pydantic model.

Every failure becomes a :class:`ConfigError` naming the file, the key path and
the problem, so entry points can print one line and exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mesh.config.errors import ConfigError
from mesh.config.interpolate import MissingVariable, interpolate

M = TypeVar("M", bound=BaseModel)


def load_config(path: str | Path, model: type[M], env: Mapping[str, str] | None = None) -> M:
    """Load ``path`` as ``model``. Raises ConfigError; never returns a partial object."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, "file not found") from None
    except OSError as exc:
        raise ConfigError(file, f"cannot read file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(file, "file is not UTF-8 text") from None
    return parse_config(text, model, file=file, env=env)


def parse_config(
    text: str, model: type[M], file: str = "<string>", env: Mapping[str, str] | None = None
) -> M:
    """Validate YAML ``text`` as ``model``; ``file`` is only used in messages."""
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(file, f"not valid YAML{where}: {problem}") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(file, f"the top level must be a mapping, not {type(tree).__name__}")
    try:
        tree = interpolate(tree, os.environ if env is None else env)
    except MissingVariable as exc:
        raise ConfigError(file, str(exc), exc.key_path) from None
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        extra = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(file, _describe(first) + extra, _key_path(first["loc"])) from None


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    # pydantic prefixes custom errors with "Value error, "; the key path says enough.
    return msg.removeprefix("Value error, ")
