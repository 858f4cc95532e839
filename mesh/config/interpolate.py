"""``${VAR}`` and ``${VAR:-default}`` substitution in configuration values.

Substitution happens on the parsed YAML tree, in string values only, so a
variable's value can never inject YAML structure. ``$$`` escapes a literal ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class MissingVariable(Exception):
    """A ``${VAR}`` without default names an unset variable."""

    def __init__(self, name: str, key_path: str) -> None:
        self.name = name
        self.key_path = key_path
        super().__init__(f"environment variable {name} is not set (use ${{{name}:-default}})")


def interpolate(tree: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Return a copy of ``tree`` with variables in every string substituted.

    ``${VAR:-default}`` uses ``default`` when VAR is unset or empty (as in the
    shell). Raises MissingVariable, carrying the key path, for an unset ``${VAR}``.
    """
    if isinstance(tree, str):
        return _substitute(tree, env, path)
    if isinstance(tree, dict):
        return {k: interpolate(v, env, _join(path, str(k))) for k, v in tree.items()}
    if isinstance(tree, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(tree)]
    return tree


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _substitute(value: str, env: Mapping[str, str], path: str) -> str:
    if "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:  # set but empty, no default: empty is what was asked for
            return found
        raise MissingVariable(name, path)

    return _PATTERN.sub(replace, value)
