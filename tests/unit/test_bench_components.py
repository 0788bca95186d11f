"""Batch connected components: scipy and the core's union-find agree, labels aside."""

from __future__ import annotations

from omnid.benchmarks.batch_components import (
    same_partition,
    scipy_components,
    union_find_components,
)
from omnid.benchmarks.workload import WorkloadSpec, labelled_events, linked_key_sets

KEY_SETS = [("a", "b"), ("c",), ("b", "d", "e"), ("f", "g"), ("g", "f")]


def test_scipy_links_chains_through_shared_identifiers() -> None:
    result = scipy_components(KEY_SETS)
    groups = {}
    for key, label in result.assignment.items():
        groups.setdefault(label, set()).add(key)
    assert sorted(map(sorted, groups.values())) == [["a", "b", "d", "e"], ["c"], ["f", "g"]]
    assert result.links == 5


def test_scipy_and_union_find_agree_on_the_generated_workload() -> None:
    key_sets = list(linked_key_sets(labelled_events(WorkloadSpec(customers=150, events=2_000))))
    batch = scipy_components(key_sets)
    oracle = union_find_components(key_sets)
    assert batch.identifiers == oracle.identifiers > 150
    assert same_partition(batch.assignment, oracle.assignment)


def test_same_partition_ignores_labels_but_not_grouping() -> None:
    assert same_partition({"a": 1, "b": 1, "c": 2}, {"a": "x", "b": "x", "c": "y"})
    assert not same_partition({"a": 1, "b": 1, "c": 2}, {"a": "x", "b": "y", "c": "y"})
    assert not same_partition({"a": 1, "b": 2}, {"a": "x", "b": "x"})
    assert not same_partition({"a": 1}, {"a": 1, "b": 2})
