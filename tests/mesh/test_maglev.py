"""Maglev tables: every slot filled, shares by weight, minimal disruption, the same in every
process; the walk past excluded instances; tables built once per instance set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from mesh.maglev import TABLE_SIZE, HashedPick, MaglevTable, MaglevTables, key_hash
from mesh.snapshot import Instance

SMALL = 251
"""A prime table size for fast tests of properties that do not need the full size."""


def _instances(count: int, **weights: int) -> tuple[Instance, ...]:
    return tuple(
        Instance(
            id=f"users-{n}",
            service="users",
            address="10.0.0.1",
            port=9000 + n,
            weight=weights.get(f"users_{n}", 1),
        )
        for n in range(count)
    )


def _owners(table: MaglevTable, keys: range) -> dict[int, str]:
    owners = {}
    for k in keys:
        picked = table.pick(key_hash(f"user-{k}"))
        assert picked is not None
        owners[k] = picked.id
    return owners


def test_every_slot_is_filled_and_equal_instances_share_evenly() -> None:
    table = MaglevTable(_instances(5))
    shares = table.shares()
    assert sum(shares.values()) == TABLE_SIZE
    # Unweighted Maglev gives each instance floor or ceil of size / N.
    assert set(shares.values()) <= {TABLE_SIZE // 5, TABLE_SIZE // 5 + 1}


def test_weighted_shares_follow_the_weights() -> None:
    table = MaglevTable(_instances(3, users_0=1, users_1=2, users_2=5))
    shares = table.shares()
    assert sum(shares.values()) == TABLE_SIZE
    for instance_id, weight in (("users-0", 1), ("users-1", 2), ("users-2", 5)):
        expected = TABLE_SIZE * weight / 8
        assert abs(shares[instance_id] - expected) <= 0.01 * expected, shares


def test_the_table_does_not_depend_on_the_order_given() -> None:
    instances = _instances(4)
    forward, backward = MaglevTable(instances, SMALL), MaglevTable(instances[::-1], SMALL)
    assert forward.instances == backward.instances
    assert list(forward._slots) == list(backward._slots)


def test_keys_map_the_same_in_another_process() -> None:
    """Nothing depends on Python's per-process hash seed: another interpreter, with
    another seed, maps the keys to the same instances (edge workers agree)."""
    table = MaglevTable(_instances(4))
    here = {str(k): v for k, v in _owners(table, range(200)).items()}
    script = (
        "import json\n"
        "from mesh.maglev import MaglevTable, key_hash\n"
        "from mesh.snapshot import Instance\n"
        "t = MaglevTable([Instance(id=f'users-{n}', service='users', address='10.0.0.1',"
        " port=9000 + n) for n in (3, 1, 0, 2)])\n"
        "print(json.dumps({str(k): t.pick(key_hash(f'user-{k}')).id for k in range(200)}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert json.loads(out) == here


@pytest.mark.parametrize("count", [3, 5, 10])
def test_removing_one_of_n_instances_moves_about_one_nth_of_the_keys(count: int) -> None:
    instances = _instances(count)
    keys = range(20_000)
    before = _owners(MaglevTable(instances), keys)
    gone = instances[count // 2]
    after = _owners(MaglevTable([i for i in instances if i is not gone]), keys)
    moved = [k for k in keys if before[k] != after[k]]
    # Every key of the removed instance moves; of the others, only a few do.
    held = [k for k in keys if before[k] == gone.id]
    assert set(held) <= set(moved)
    others_moved = len(moved) - len(held)
    assert others_moved <= 0.01 * len(keys), (len(held), others_moved)
    assert len(moved) <= len(keys) * (1 / count + 0.02)


def test_adding_an_instance_moves_about_its_share() -> None:
    keys = range(20_000)
    before = _owners(MaglevTable(_instances(4)), keys)
    after = _owners(MaglevTable(_instances(5)), keys)
    moved = [k for k in keys if before[k] != after[k]]
    assert len(moved) <= len(keys) * (1 / 5 + 0.02)
    assert Counter(after[k] for k in moved)["users-4"] >= 0.9 * len(moved)


def test_an_excluded_instance_is_walked_past_to_the_next_slot_onward() -> None:
    table = MaglevTable(_instances(3), SMALL)
    slots = list(table._slots)
    for hashed in range(SMALL):
        owner = table.instances[slots[hashed]]
        picked = table.pick(hashed, {owner.id})
        assert picked is not None and picked.id != owner.id
        # The first slot after it (wrapping) held by another instance.
        step = next(s for s in range(1, SMALL) if slots[(hashed + s) % SMALL] != slots[hashed])
        assert picked is table.instances[slots[(hashed + step) % SMALL]]
    assert table.pick(7, {"users-0", "users-1", "users-2"}) is None
    assert table.pick(7, set()) is table.instances[slots[7]]


def test_an_instance_too_light_for_any_slot_is_still_reached_when_alone() -> None:
    instances = _instances(2, users_0=1, users_1=10_000)
    table = MaglevTable(instances, 7)
    assert table.shares()["users-0"] == 0
    assert table.pick(3, {"users-1"}) == instances[0]


def test_a_table_needs_instances_and_more_slots_than_instances() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MaglevTable(())
    with pytest.raises(ValueError, match="fewer instances"):
        MaglevTable(_instances(7), 7)


def test_tables_are_built_once_per_instance_set_and_kept_bounded() -> None:
    tables = MaglevTables(SMALL)
    three = _instances(3)
    first = tables.table(three)
    assert tables.table(three) is first  # the same tuple: recognised by identity
    assert tables.table(tuple(three)) is first
    assert tables.table(list(three)) is first  # another container, same ids and weights
    assert tables.builds == 1
    two = three[:2]
    assert tables.table(two) is not first
    assert tables.table(three) is first
    assert tables.builds == 2
    # A change of weight is another set.
    heavier = (three[0], three[1], Instance("users-2", "users", "10.0.0.1", 9002, weight=2))
    assert tables.table(heavier) is not first
    assert tables.builds == 3
    # Only the last 8 sets are kept: the oldest is built again.
    for n in range(4, 12):
        tables.table(_instances(n))
    assert tables.builds == 11
    tables.table(two)
    assert tables.builds == 12


def test_hashed_pick_is_a_selector_over_whatever_instances_it_is_given() -> None:
    tables = MaglevTables(SMALL)
    instances = _instances(3)
    pick = HashedPick(tables, key_hash("user-1"))
    first = pick.pick(instances)
    assert first is not None
    second = pick.pick(instances, {first.id})
    assert second is not None and second.id != first.id
    assert pick.pick(()) is None
