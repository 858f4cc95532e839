"""The one error type configuration loading raises."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration file is missing, unreadable, or invalid.

    ``str(error)`` is a single line fit for a terminal: the file, the key path
    (``routes[0].prefix``) when known, and what is wrong. Entry points print it
    and exit with status 2; it never needs a traceback to be understood.
    """

    def __init__(self, file: str, problem: str, key_path: str = "") -> None:
        self.file = file
        self.key_path = key_path
        self.problem = problem
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"invalid configuration in {where}: {problem}")
