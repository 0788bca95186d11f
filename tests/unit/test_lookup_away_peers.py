"""Which peers a worker stops asking for a while (pipeline.lookup.AwayPeers): a peer gone as a
whole, or only the partition it could not answer for, so its other keys keep being asked."""

from __future__ import annotations

from tests.unit.test_lookup_rate_limit import Clock

from omnid.pipeline.lookup import OWNER_AWAY_S, AwayPeers


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
