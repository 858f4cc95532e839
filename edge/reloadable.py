"""What a component offers a configuration reload (:mod:`edge.reload`): prepare, then commit.

Kept apart from the reloader so that the modules whose parts reload (TLS,
features, the gateway) can name these without importing the whole edge
configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge.config import EdgeConfig


@dataclass(frozen=True)
class Reload:
    """A component's prepared part of a new configuration."""

    keys: tuple[str, ...]
    """The key paths it applies live (``routes``, ``rate_limits.policies``): a key path is
    covered by one of these when it equals it or lies under it."""
    commit: Callable[[], None]
    """Install what was prepared; must not fail (everything that can fail is done in
    :meth:`Reloadable.prepare_reload`)."""


class ReloadRefused(Exception):
    """A component cannot apply a valid file while running, e.g. a route needing an
    authentication method the running edge does not have; names the key path."""

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(problem)
        self.key_path = key_path
        self.problem = problem


class Reloadable(Protocol):
    def prepare_reload(self, config: EdgeConfig) -> Reload | None:
        """Check and build this component's part of ``config``; None when it applies
        nothing (its keys, if changed, then wait for a restart).

        Raises :class:`ReloadRefused` or ConfigError to refuse the whole file.
        Has no effect until the returned :attr:`Reload.commit` is called."""
        ...
