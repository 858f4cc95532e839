"""Consul intentions → whether a calling service may reach this one (pure, table-tested).

An intention is (source, destination, allow or deny), either side a service
name or ``*``. Consul gives each a ``Precedence`` (9: both exact, 8: any
source to this destination, 6: this source to any destination, 5: any to
any); for a call the intention of highest precedence that matches both
sides decides, and when none matches the *default* does: allow with Consul's
ACLs off, the ACL default policy with them on (configured here as
``mesh_tls.default_intention``, since the agent's HTTP API does not expose
it without an ACL token). This is the rule of Consul's own
``/v1/agent/connect/authorize``; it is evaluated here, on the sidecar, over the
list of intentions it follows, so a decision needs no round trip to Consul
and survives a Consul outage with the last list known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Intention:
    source: str
    destination: str
    allow: bool
    precedence: int
    id: str = ""

    def describe(self) -> str:
        action = "allow" if self.allow else "deny"
        return f"intention {action} {self.source} => {self.destination}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def intentions_from_consul(raw: Iterable[Mapping[str, Any]] | None) -> tuple[Intention, ...]:
    """``/v1/connect/intentions`` → intentions; entries without both names, an action
    Consul would not write, or another source type than ``consul`` are left out.

    An intention with L7 ``Permissions`` (Consul 1.9+: rules on paths and methods,
    and no action of its own) is read as *deny*: meshgate does not evaluate them,
    and Consul itself treats them as deny for connections it cannot inspect."""
    out: list[Intention] = []
    for entry in raw or ():
        source, destination = entry.get("SourceName"), entry.get("DestinationName")
        action = entry.get("Action")
        if not isinstance(source, str) or not isinstance(destination, str):
            continue
        if action is None and entry.get("Permissions"):
            action = "deny"
        if action not in ("allow", "deny") or entry.get("SourceType", "consul") != "consul":
            continue
        precedence = entry.get("Precedence")
        out.append(
            Intention(
                source=source,
                destination=destination,
                allow=action == "allow",
                precedence=precedence if isinstance(precedence, int) else 0,
                id=str(entry.get("ID", "")),
            )
        )
    return tuple(out)


@dataclass
class IntentionTable:
    """The intentions that apply to calls *to* ``destination``, and the default.

    :meth:`decide` is memoised per caller; a new list of intentions is a new table.
    """

    destination: str
    intentions: tuple[Intention, ...]
    default_allow: bool
    _decided: dict[str, Decision] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        mine = [i for i in self.intentions if i.destination in (self.destination, WILDCARD)]
        # Highest precedence first; among equals, exact names first, then by id, so the
        # order never depends on the order Consul listed them in.
        mine.sort(key=lambda i: (-i.precedence, i.source == WILDCARD, i.id))
        self.intentions = tuple(mine)

    def decide(self, source: str) -> Decision:
        """May ``source`` (a service name) call :attr:`destination`?"""
        decided = self._decided.get(source)
        if decided is None:
            decided = self._decide(source)
            if len(self._decided) < 4096:  # callers are services: few, but never unbounded
                self._decided[source] = decided
        return decided

    def _decide(self, source: str) -> Decision:
        for intention in self.intentions:
            if intention.source in (source, WILDCARD):
                return Decision(intention.allow, intention.describe())
        action = "allow" if self.default_allow else "deny"
        return Decision(self.default_allow, f"no intention matches; the default is {action}")
