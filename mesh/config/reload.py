"""Read a configuration file again while the process serves (SIGHUP); apply what can change live.

Used by the edge (:mod:`edge.main`) and the sidecar (:mod:`sidecar.main`), each with
its own components.

What a reload promises:

* **All or nothing.** The file is loaded and validated as at start; then every
  component (:class:`Reloadable`) prepares its part of the new configuration,
  which may refuse it (:class:`ReloadRefused`, or a ConfigError naming another
  file, e.g. an unreadable certificate). Only when every component has
  prepared does any commit, and commits cannot fail. A refused file leaves the
  process exactly as it was: the refusal is logged as one line naming the
  file, the key and the problem (the line a bad file gets at start) and
  counted.
* **Requests in flight are not touched.** A request reads the pipeline once
  when it starts (the edge's :meth:`edge.gateway.EdgeGateway.chain`), and a
  sidecar's calls in flight keep the breakers they started with, so each
  finishes under the configuration it started with; requests that start after
  the commit get the new one. Connections stay open; nothing is re-bound.
* **What needs a restart says so.** Each component names the key paths it
  applies (:attr:`Reload.keys`). Any other key that differs from what the
  process started with (a listen port, Redis's address, tracing, ...) keeps
  its running value; it is logged as a warning naming the key, listed at
  ``/config`` and counted in ``meshgate_config_restart_pending``, so a file
  that says one thing while the process does another is visible.

Metrics: ``meshgate_config_reloads_total{outcome}`` (``applied``,
``refused``), ``meshgate_config_restart_pending`` (keys changed in the file
that take effect only at the next restart) and
``meshgate_config_last_reload_success_timestamp_seconds`` (the start, then
each applied reload), after Prometheus's own reload metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from mesh.config.errors import ConfigError
from mesh.config.sections import LoggingConfig

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)
C_contra = TypeVar("C_contra", contravariant=True)


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


class Reloadable(Protocol[C_contra]):
    def prepare_reload(self, config: C_contra) -> Reload | None:
        """Check and build this component's part of ``config``; None when it applies
        nothing (its keys, if changed, then wait for a restart).

        Raises :class:`ReloadRefused` or ConfigError to refuse the whole file.
        Has no effect until the returned :attr:`Reload.commit` is called."""
        ...


@dataclass(frozen=True)
class ReloadResult:
    outcome: str
    """``applied`` or ``refused``."""
    at: float
    """Wall-clock time of the reload."""
    error: str | None = None
    """Why the file was refused (the line that was logged)."""
    applied: tuple[str, ...] = ()
    """Key paths changed since the last applied configuration and applied now."""
    restart_pending: tuple[str, ...] = ()
    """Key paths that differ from what the process started with and are not applied."""


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted key paths whose values differ between two dumped configurations, sorted.

    Mappings are compared key by key (``rate_limits.policies.per-user.limit``);
    anything else, lists included, as a whole (``routes``): a route is not the
    same route at another index.
    """
    changed: list[str] = []
    for key in sorted(old.keys() | new.keys()):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += changed_keys(a, b, f"{path}.")
        elif a != b:
            changed.append(path)
    return changed


def covered(key: str, prefixes: Iterable[str]) -> bool:
    """Whether ``key`` is one of ``prefixes`` or lies under one of them."""
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


class HasLogging(Protocol):
    @property
    def logging(self) -> LoggingConfig: ...


class LoggingLevel:
    """``logging.level``, applied to the root logger."""

    def prepare_reload(self, config: HasLogging) -> Reload:
        level = getattr(logging, config.logging.level.upper(), logging.INFO)
        return Reload(("logging.level",), lambda: logging.getLogger().setLevel(level))


class ConfigReloader(Generic[C]):
    """Reloads one process's configuration from its file; see the module docstring."""

    def __init__(
        self,
        file: str,
        load: Callable[[], C],
        started: C,
        components: Sequence[Reloadable[C]],
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``load`` reads and validates ``file`` (raising ConfigError) exactly as at start,
        command-line overrides included; ``started`` is the configuration running now;
        ``components`` prepare and commit in this order (the pipeline last, so that it
        is rebuilt from the components' new parts)."""
        self.file = file
        self._load = load
        self._started = started.model_dump()
        self._applied = self._started
        self._components = tuple(components)
        self._clock = clock
        self.last: ReloadResult | None = None
        reloads = Counter(
            "meshgate_config_reloads",
            "Configuration reloads (SIGHUP), by outcome: applied, or refused (the file "
            "is invalid or cannot be applied live; the previous configuration runs on).",
            ["outcome"],
            registry=registry,
        )
        self._applied_count = reloads.labels("applied")
        self._refused_count = reloads.labels("refused")
        self._pending = Gauge(
            "meshgate_config_restart_pending",
            "Keys changed in the configuration file that take effect only at the next restart.",
            registry=registry,
            multiprocess_mode="max",
        )
        self._success = Gauge(
            "meshgate_config_last_reload_success_timestamp_seconds",
            "When the configuration was last applied: the start, then each applied reload.",
            registry=registry,
            multiprocess_mode="max",
        )
        self._success.set(clock())

    def reload(self) -> ReloadResult:
        """Read the file again and apply it, or keep everything as it is; never raises."""
        now = self._clock()
        try:
            config = self._load()
            prepared = [r for c in self._components if (r := c.prepare_reload(config)) is not None]
        except ConfigError as exc:
            return self._refuse(now, str(exc))
        except ReloadRefused as exc:
            return self._refuse(now, str(ConfigError(self.file, exc.problem, exc.key_path)))
        except ValueError as exc:  # a part's own check, beyond what loading validates
            return self._refuse(now, str(ConfigError(self.file, str(exc))))
        except Exception as exc:  # a bug in a part: nothing committed, and the traceback kept
            log.exception("preparing the reload of %s failed", self.file)
            return self._refuse(now, f"{self.file}: the reload failed: {exc!r} (see the log)")
        for reload in prepared:
            reload.commit()
        live = [key for reload in prepared for key in reload.keys]
        dumped = config.model_dump()
        applied = [k for k in changed_keys(self._applied, dumped) if covered(k, live)]
        pending = [k for k in changed_keys(self._started, dumped) if not covered(k, live)]
        self._applied = dumped
        self._applied_count.inc()
        self._pending.set(len(pending))
        self._success.set(now)
        log.info(
            "configuration reloaded from %s: %s",
            self.file,
            f"applied {', '.join(applied)}" if applied else "no live setting changed",
        )
        for key in pending:
            log.warning(
                "%s: %s differs from the running value; it takes effect at the next restart",
                self.file,
                key,
            )
        self.last = ReloadResult("applied", now, None, tuple(applied), tuple(pending))
        return self.last

    def _refuse(self, now: float, error: str) -> ReloadResult:
        log.error("configuration reload refused, the previous one runs on: meshgate: %s", error)
        self._refused_count.inc()
        pending = self.last.restart_pending if self.last is not None else ()
        self.last = ReloadResult("refused", now, error, (), pending)
        return self.last

    def view(self) -> dict[str, Any]:
        """The ``/config`` admin document: the file, and what the last reload did."""
        last = self.last
        return {
            "file": self.file,
            "last_reload": None
            if last is None
            else {
                "outcome": last.outcome,
                "at": last.at,
                "error": last.error,
                "applied": list(last.applied),
            },
            "restart_pending": [] if last is None else list(last.restart_pending),
        }
