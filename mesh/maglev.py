"""Maglev consistent hashing (Google's Maglev paper, as Envoy's ``MAGLEV`` policy).

A :class:`MaglevTable` maps every slot of a prime-sized table to an instance; a key
hashes to a slot, and its instance takes the key's requests. The table depends only
on the instances' ids and weights (never on Python's per-process ``hash()``), so
every edge worker, and every edge, maps a key to the same instance. When one
instance of N leaves, about 1/N of the keys move (those it held, and a few more):
Maglev's "minimal disruption".

Building a table fills 65,537 slots in Python: about 11 to 28 ms for 2 to 100
instances (weighted or not) on the machine this was written on, during which the
event loop waits. :class:`MaglevTables` therefore
keeps the tables of the last few instance sets and builds only for a set it has
not seen.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Container, Sequence

from mesh.snapshot import Instance

TABLE_SIZE = 65537
"""Slots per table (Envoy's default): a prime, so that every skip visits every slot."""

_TABLES_KEPT = 8
"""Instance sets per service whose tables are kept (a service's healthy set, its
canary sides, a set with an instance ejected, ...)."""


def key_hash(key: str) -> int:
    """A 64-bit hash of a request's key, the same in every process."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def _permutation(instance_id: str, size: int) -> tuple[int, int]:
    """The instance's preference order over the slots: ``offset + j * skip`` for
    j = 0, 1, ... (modulo ``size``), from a hash of its id alone."""
    digest = hashlib.blake2b(instance_id.encode(), digest_size=16, person=b"meshgate-maglev")
    raw = digest.digest()
    offset = int.from_bytes(raw[:8], "little") % size
    skip = int.from_bytes(raw[8:], "little") % (size - 1) + 1
    return offset, skip


class MaglevTable:
    """The lookup table of one set of instances (at least one; ids unique)."""

    __slots__ = ("_slots", "instances", "size")

    def __init__(self, instances: Sequence[Instance], size: int = TABLE_SIZE) -> None:
        """Build the table; ``size`` must be a prime larger than the number of
        instances. Instances are ordered by id first, so the table does not depend on
        the order they are given in."""
        if not instances:
            raise ValueError("a Maglev table needs at least one instance")
        self.instances: tuple[Instance, ...] = tuple(sorted(instances, key=lambda i: i.id))
        self.size = size
        self._slots = _fill(self.instances, size)

    def shares(self) -> dict[str, int]:
        """Slots held per instance id (for tests and diagnostics)."""
        counts = dict.fromkeys((i.id for i in self.instances), 0)
        for index in self._slots:
            counts[self.instances[index].id] += 1
        return counts

    def pick(self, hashed: int, exclude: Container[str] = ()) -> Instance | None:
        """The instance of the slot ``hashed`` falls in; when that one is in
        ``exclude``, the next slot onward holding one that is not. None when every
        instance is excluded."""
        slots, instances, size = self._slots, self.instances, self.size
        slot = hashed % size
        instance = instances[slots[slot]]
        if not exclude or instance.id not in exclude:
            return instance
        if all(i.id in exclude for i in instances):
            return None
        for _ in range(size):
            slot += 1
            if slot == size:
                slot = 0
            instance = instances[slots[slot]]
            if instance.id not in exclude:
                return instance
        # Only an instance whose weight is too small for a slot can be left here.
        return next(i for i in instances if i.id not in exclude)


def _fill(instances: tuple[Instance, ...], size: int) -> array[int]:
    """Maglev's population: in turns, each instance takes the next free slot of its
    permutation. With weights, an instance earns ``weight / largest weight`` of a
    turn per round and takes a slot for each whole one, so slots are shared in
    proportion to the weights (the idea of Envoy's weighted Maglev, not its code)."""
    count = len(instances)
    if count >= size:
        raise ValueError(f"a Maglev table of {size} slots takes fewer instances ({count})")
    positions: list[int] = []
    skips: list[int] = []
    for instance in instances:
        offset, skip = _permutation(instance.id, size)
        positions.append(offset)
        skips.append(skip)
    heaviest = max(i.weight for i in instances)
    step = [i.weight / heaviest for i in instances]
    credit = [0.0] * count
    table = [-1] * size
    filled = 0
    # The hot loop of the build: locals only, positions advanced by addition.
    while True:
        for index in range(count):
            earned = credit[index] + step[index]
            if earned < 1.0:
                credit[index] = earned
                continue
            credit[index] = earned - 1.0
            slot, skip = positions[index], skips[index]
            while table[slot] >= 0:
                slot += skip
                if slot >= size:
                    slot -= size
            table[slot] = index
            slot += skip
            positions[index] = slot - size if slot >= size else slot
            filled += 1
            if filled == size:
                return array("I", table)


class MaglevTables:
    """The tables of one service's recent instance sets, built only for a new set.

    The set given last is recognised by identity (the snapshot's tuple, the same
    for every request until the next change); another is looked up by its ids and
    weights, among the last few kept.
    """

    __slots__ = ("_kept", "_last", "_last_table", "_size", "builds")

    def __init__(self, size: int = TABLE_SIZE) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[tuple[str, int], ...], MaglevTable] = OrderedDict()
        self._last: Sequence[Instance] | None = None
        self._last_table: MaglevTable | None = None
        self.builds = 0
        """Tables built so far."""

    def table(self, instances: Sequence[Instance]) -> MaglevTable:
        """The table of ``instances`` (not empty)."""
        if instances is self._last and self._last_table is not None:
            return self._last_table
        key = tuple((i.id, i.weight) for i in instances)
        table = self._kept.get(key)
        if table is None:
            table = MaglevTable(instances, self._size)
            self.builds += 1
            self._kept[key] = table
            if len(self._kept) > _TABLES_KEPT:
                self._kept.popitem(last=False)
        else:
            self._kept.move_to_end(key)
        self._last, self._last_table = instances, table
        return table


class HashedPick:
    """A selector (:class:`mesh.balancing.Selector`) for one request's key: Maglev over
    whatever instances each attempt may use."""

    __slots__ = ("_hashed", "_tables")

    def __init__(self, tables: MaglevTables, hashed: int) -> None:
        self._tables = tables
        self._hashed = hashed

    def pick(self, instances: Sequence[Instance], exclude: Container[str] = ()) -> Instance | None:
        if not instances:
            return None
        return self._tables.table(instances).pick(self._hashed, exclude)
