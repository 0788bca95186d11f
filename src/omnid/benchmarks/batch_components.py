"""The batch baseline: connected components of identifier links with scipy, against union-find.

Streaming resolution must end where a batch job over all links ends (without limits); this
computes that end state in one pass and times it, so the streaming cost has a yardstick.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from omnid.identity.components import UnionFind


@dataclass(frozen=True)
class Components:
    """A partition of identifier keys and how long computing it took."""

    assignment: dict[str, int | str]  # identifier key -> component label
    links: int
    seconds: float

    @property
    def identifiers(self) -> int:
        return len(self.assignment)

    @property
    def count(self) -> int:
        return len(set(self.assignment.values()))


def scipy_components(key_sets: Iterable[Sequence[str]]) -> Components:
    """Components of the graph whose edges join the first key of each set to the others."""
    started = time.perf_counter()
    index: dict[str, int] = {}
    sources: list[int] = []
    targets: list[int] = []
    for keys in key_sets:
        anchor = index.setdefault(keys[0], len(index))
        for key in keys[1:]:
            sources.append(anchor)
            targets.append(index.setdefault(key, len(index)))
    size = len(index)
    graph = coo_matrix(
        (np.ones(len(sources), dtype=np.int8), (np.array(sources), np.array(targets))),
        shape=(size, size),
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    assignment: dict[str, int | str] = dict(zip(index, labels.tolist(), strict=True))
    return Components(assignment, len(sources), time.perf_counter() - started)


def union_find_components(key_sets: Iterable[Sequence[str]]) -> Components:
    """The same partition with the identity core's union-find (the invariant-1 oracle)."""
    started = time.perf_counter()
    sets = UnionFind()
    links = 0
    for keys in key_sets:
        sets.add_group(list(keys))
        links += len(keys) - 1
    assignment: dict[str, int | str] = {key: sets.find(key) for key in sets.parent}
    return Components(assignment, links, time.perf_counter() - started)


def same_partition(left: Mapping[str, Hashable], right: Mapping[str, Hashable]) -> bool:
    """True when both assignments group the same keys the same way, whatever their labels."""
    if left.keys() != right.keys():
        return False
    left_to_right: dict[Hashable, Hashable] = {}
    right_to_left: dict[Hashable, Hashable] = {}
    for key, label in left.items():
        other = right[key]
        if left_to_right.setdefault(label, other) != other:
            return False
        if right_to_left.setdefault(other, label) != label:
            return False
    return True
