"""Workers learn who owns what from each other's records on the roster topic, with no request
to the group coordinator: a worker's claims show on its peers, and a SIGTERMed worker's
tombstone removes it at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from omnid.pipeline.membership import GroupView
from omnid.pipeline.roster import Roster

pytestmark = pytest.mark.kafka

ROSTER_CONFIG = {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}


def eventually(view: Callable[[], GroupView], holds: Callable[[GroupView], bool]) -> GroupView:
    """The first view for which `holds` is true; bounded by polls, never asserted on time."""
    for _ in range(300):
        seen = view()
        if holds(seen):
            return seen
        time.sleep(0.1)
    return view()


def test_peers_see_each_others_partitions_and_a_tombstone_removes_a_worker(
    kafka_config: dict[str, str], make_topic: Callable[..., str]
) -> None:
    topic = make_topic("worker-roster", config=ROSTER_CONFIG)
    one = Roster(kafka_config, topic, "group-a", "w1", "http://127.0.0.1:1")
    two = Roster(kafka_config, topic, "group-a", "w2", "http://127.0.0.1:2")
    stranger = Roster(kafka_config, topic, "group-b", "w1", "http://127.0.0.1:3")
    for roster in (one, two, stranger):
        roster.start()
    try:
        one.assigned([("in", 0), ("in", 1)])
        two.assigned([("in", 2)])
        expected = [("in", p) for p in range(3)]
        seen = eventually(lambda: one.view(expected), lambda v: v.settled)
        assert seen.owners == {
            ("in", 0): "http://127.0.0.1:1",
            ("in", 1): "http://127.0.0.1:1",
            ("in", 2): "http://127.0.0.1:2",
        }
        assert eventually(two.view, lambda v: len(v.owners) == 3).owners == seen.owners

        # A handoff: w2 takes partition 1 before w1 says it gave it up.
        two.assigned([("in", 1), ("in", 2)])
        moved = eventually(one.view, lambda v: v.owners.get(("in", 1)) == "http://127.0.0.1:2")
        assert moved.owners[("in", 1)] == "http://127.0.0.1:2"
        one.assigned([("in", 0)])
        assert eventually(lambda: one.view(expected), lambda v: v.settled).settled

        two.close()
        gone = eventually(one.view, lambda v: [m.name for m in v.members] == ["w1"])
        assert [m.name for m in gone.members] == ["w1"]
        assert gone.owners == {("in", 0): "http://127.0.0.1:1"}
    finally:
        for roster in (one, two, stranger):
            roster.close()
