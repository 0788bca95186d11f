"""Resolution quality: pairwise precision and recall of resolved profiles against a ground truth.

Both sides are assignments `identifier key -> group label`; only the partition matters, never
the label values. Pure functions so the arithmetic is checked on hand-made cases.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ResolutionQuality:
    """How a resolved partition of identifiers compares with the expected one."""

    identifiers: int  # expected identifiers
    true_pairs: int  # identifier pairs that belong together
    predicted_pairs: int  # pairs of expected identifiers the resolver put together
    correct_pairs: int
    precision: float
    recall: float
    over_merges: int  # per profile, expected groups beyond the first it holds, summed
    under_merges: int  # per expected group, profiles beyond the first it is spread over, summed
    missing: int  # expected identifiers in no profile
    unexpected: int  # identifiers in profiles that the truth does not know (junk that got in)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_quality(
    expected: Mapping[str, str], predicted: Mapping[str, str]
) -> ResolutionQuality:
    """Compare `predicted` (key -> profile id) with `expected` (key -> true group).

    An expected identifier missing from `predicted` counts as a profile of its own, so it costs
    recall. With no pairs on a side the matching ratio is 1.0 (nothing to get wrong).
    """
    # A missing identifier gets a label no profile id can take: a tuple.
    resolved = {key: predicted.get(key, ("missing", key)) for key in expected}
    cells = Counter((expected[key], resolved[key]) for key in expected)
    group_sizes = Counter(expected.values())
    profile_sizes = Counter(resolved.values())
    true_pairs = sum(_pairs(n) for n in group_sizes.values())
    predicted_pairs = sum(_pairs(n) for n in profile_sizes.values())
    correct_pairs = sum(_pairs(n) for n in cells.values())
    groups_per_profile: Counter[object] = Counter(profile for _, profile in cells)
    profiles_per_group: Counter[str] = Counter(group for group, _ in cells)
    return ResolutionQuality(
        identifiers=len(expected),
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct_pairs,
        precision=correct_pairs / predicted_pairs if predicted_pairs else 1.0,
        recall=correct_pairs / true_pairs if true_pairs else 1.0,
        over_merges=sum(n - 1 for n in groups_per_profile.values()),
        under_merges=sum(n - 1 for n in profiles_per_group.values()),
        missing=sum(1 for key in expected if key not in predicted),
        unexpected=sum(1 for key in predicted if key not in expected),
    )


def mixed_profiles(expected: Mapping[str, str], predicted: Mapping[str, str]) -> dict[str, int]:
    """Profiles holding identifiers of more than one expected group: profile id -> groups held."""
    groups: dict[str, set[str]] = defaultdict(set)
    for key, profile in predicted.items():
        if key in expected:
            groups[profile].add(expected[key])
    return {profile: len(held) for profile, held in groups.items() if len(held) > 1}


def assignment_of_groups(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """`key -> label` for a partition given as groups of keys; a group's label is its least key."""
    assignment: dict[str, str] = {}
    for group in groups:
        members = sorted(group)
        if members:
            for key in members:
                assignment[key] = members[0]
    return assignment


def assignment_of_profiles(updates: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """`identifier key -> profile id` from the final ProfileUpdate record of each active profile.

    Raises ValueError when two active profiles both list one identifier: that breaks the
    one-owner invariant and no quality figure would mean anything.
    """
    assignment: dict[str, str] = {}
    for update in updates:
        if update.get("status", "active") != "active":
            continue
        for identifier in update["identifiers"]:
            key = f"{identifier['type']}:{identifier['value']}"
            owner = assignment.setdefault(key, update["profile_id"])
            if owner != update["profile_id"]:
                raise ValueError(
                    f"a {identifier['type']} identifier is listed by two active profiles: "
                    f"{owner} and {update['profile_id']}"
                )
    return assignment


def group_sizes(assignment: Mapping[str, str]) -> dict[int, int]:
    """How many groups there are of each size (a histogram for the report)."""
    sizes = Counter(Counter(assignment.values()).values())
    return dict(sorted(sizes.items()))


def invert(assignment: Mapping[str, str]) -> dict[str, set[str]]:
    """`label -> keys` from `key -> label`."""
    groups: dict[str, set[str]] = defaultdict(set)
    for key, label in assignment.items():
        groups[label].add(key)
    return dict(groups)
