"""Which peers a worker stops asking for a while (pipeline.lookup.AwayPeers): a peer gone as a
whole, or only the partition it could not answer for, so its other keys keep being asked; and
which peer a lookup asks for a copy of a partition whose owner cannot answer."""

from __future__ import annotations

from tests.unit.test_lookup_rate_limit import Clock

from omnid.pipeline.lookup import OWNER_AWAY_S, AwayPeers, peer_with_copy
from omnid.pipeline.standby import standby_members


def test_a_peer_restoring_one_partition_is_still_asked_for_its_others() -> None:
    clock = Clock()
    peers = AwayPeers(clock)
    peers.mark("http://w3", 4)  # answered 503 rebalancing for a key of partition 4
    assert peers.away("http://w3", 4)
    assert not peers.away("http://w3", 1)
    assert not peers.away("http://w2", 4)


def test_an_unreachable_peer_is_away_for_every_partition_then_asked_again() -> None:
    clock = Clock()
    peers = AwayPeers(clock)
    peers.mark("http://w2", None)
    assert peers.away("http://w2", 0) and peers.away("http://w2", 5) and peers.away("http://w2")
    clock.now += OWNER_AWAY_S + 0.01
    assert not peers.away("http://w2", 0) and not peers.away("http://w2")


def test_a_lookup_finds_the_dead_owners_standby_while_the_roster_still_lists_the_dead() -> None:
    """The front door took a dead owner's partition over and is restoring it: the placement
    under the new owner may name the dead member (the roster keeps it for seconds), whose
    unreachable answer marked it away, so the lookup goes on to the member holding a copy."""
    members = {"front": "http://front", "dead": "http://dead", "third": "http://third"}
    partition = next(p for p in range(64) if standby_members(p, "front", members, 1) == ["dead"])
    peers = AwayPeers(Clock())
    assert peer_with_copy(partition, "http://front", members, "http://front", peers) == (
        "http://dead"
    )
    peers.mark("http://dead", None)  # connection refused
    assert peer_with_copy(partition, "http://front", members, "http://front", peers) == (
        "http://third"
    )
    peers.mark("http://third", partition)  # answered 503: it holds no copy either
    assert peer_with_copy(partition, "http://front", members, "http://front", peers) is None
