"""Which partitions a worker stands by for: every worker computes the same answer alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from omnid.pipeline.standby import standby_partitions

TOPICS = ("identity", "profile")


def _owners(members: list[str], partitions: int) -> dict[tuple[str, int], str]:
    """Range-like: partition p of every topic owned by the same member (co-partitioned)."""
    return {(t, p): members[p % len(members)] for t in TOPICS for p in range(partitions)}


@given(
    st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=6, unique=True),
    st.integers(1, 12),
    st.integers(0, 7),
)
def test_each_partition_gets_min_replicas_standbys_other_than_its_owner(
    members: list[str], partitions: int, replicas: int
) -> None:
    owners = _owners(members, partitions)
    chosen = {m: standby_partitions(m, owners, members, replicas) for m in members}
    for source, owner in owners.items():
        standing_by = {m for m in members if source in chosen[m]}
        assert owner not in standing_by
        assert len(standing_by) == min(replicas, len(members) - 1)
    # Co-partitioned tables stand by together: same partition number, same members.
    for member, sources in chosen.items():
        numbers = {p for _t, p in sources}
        assert sources == {(t, p) for t in TOPICS for p in numbers}, member


def test_with_replicas_at_least_the_other_members_every_non_owned_partition_is_a_standby() -> None:
    members = ["w1", "w2", "w3"]
    owners = _owners(members, 6)
    mine = standby_partitions("w1", owners, members, 2)
    assert mine == {source for source, owner in owners.items() if owner != "w1"}


def test_a_member_joining_moves_only_standbys_it_takes() -> None:
    """Rendezvous hashing: a newcomer takes some standbys; nobody else swaps among themselves."""
    before_members = ["w1", "w2", "w3"]
    owners = {(t, p): "w1" for t in TOPICS for p in range(12)}
    after_members = [*before_members, "w4"]
    for member in ("w2", "w3"):
        before = standby_partitions(member, owners, before_members, 1)
        after = standby_partitions(member, owners, after_members, 1)
        assert after <= before
    assert standby_partitions("w4", owners, after_members, 1)
