"""Plain union-find over the identifiers of events: the oracle for invariant 1, and for the
over-merge protection of weak identifiers (components through strong identifiers alone)."""

from __future__ import annotations

from collections.abc import Iterable

from omnid.identity.intake import usable_identifiers
from omnid.identity.model import Event
from omnid.identity.rules import IdentityRules, NormalisationCache


class UnionFind:
    """Disjoint sets of identifier keys (path halving, union by size)."""

    __slots__ = ("parent", "size")

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}

    def find(self, key: str) -> str:
        parent = self.parent
        if key not in parent:
            parent[key] = key
            self.size[key] = 1
            return key
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return
        if self.size[root_a] < self.size[root_b]:
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]

    def add_group(self, keys: list[str]) -> None:
        first = keys[0]
        self.find(first)
        for key in keys[1:]:
            self.union(first, key)

    def groups(self) -> list[frozenset[str]]:
        members: dict[str, set[str]] = {}
        for key in self.parent:
            members.setdefault(self.find(key), set()).add(key)
        return [frozenset(group) for group in members.values()]


def components(
    rules: IdentityRules, events: Iterable[Event], cache: NormalisationCache | None = None
) -> list[frozenset[str]]:
    """Connected components of identifier keys, linking the usable identifiers of each event."""
    sets = UnionFind()
    for event in events:
        identifiers, _ = usable_identifiers(rules, event.identifiers, cache)
        if identifiers:
            sets.add_group([i.key for i in identifiers])
    return sets.groups()


def strong_components(
    rules: IdentityRules,
    events: Iterable[Event],
    joined: Iterable[tuple[str, str]] = (),
    cache: NormalisationCache | None = None,
    unlinking: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """`key -> component root` over strong identifiers, linking only the strong identifiers of
    each event: what events prove about people without trusting any device or cookie. `joined`:
    pairs of strong identifiers whose profiles an operator merged by hand; `unlinking`:
    identifiers that link nothing (quarantined)."""
    sets = UnionFind()
    weak = rules.weak_types
    for event in events:
        identifiers, _ = usable_identifiers(rules, event.identifiers, cache)
        strong = [i.key for i in identifiers if i.type not in weak and i.key not in unlinking]
        if strong:
            sets.add_group(strong)
    for a, b in joined:
        sets.union(a, b)
    return {key: sets.find(key) for key in list(sets.parent)}
