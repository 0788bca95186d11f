"""Which lookups a chaos fault moved: the availability of keys that did not move is the figure
the stay-up target is about, so a key whose owner was killed must never count as staying."""

from __future__ import annotations

from omnid.testing.chaos import moved_keys

PARTITIONS_OF = {"a": ("ids:0", "profiles:1"), "b": ("ids:1", "profiles:0")}
BEFORE = {"ids:0": "w1", "ids:1": "w2", "profiles:0": "w2", "profiles:1": "w1"}


def test_a_key_whose_owner_was_killed_moved_even_if_it_got_its_partitions_back() -> None:
    assert moved_keys(PARTITIONS_OF, BEFORE, dict(BEFORE), victim="w2") == ["b"]


def test_a_reassigned_partition_moves_its_keys_and_a_join_moves_nothing_else() -> None:
    after = {**BEFORE, "profiles:1": "w3"}
    assert moved_keys(PARTITIONS_OF, BEFORE, after, victim="w3") == ["a"]
    assert moved_keys(PARTITIONS_OF, BEFORE, dict(BEFORE), victim=None) == []
