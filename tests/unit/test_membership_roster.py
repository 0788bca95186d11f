"""The roster fold (omnid.pipeline.membership): who owns what, from the members' own records,
the same on every follower, with dead members' claims superseded or expired."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from omnid.pipeline.membership import (
    EXPIRE_AFTER_S,
    GroupMember,
    RosterLog,
    RosterRecord,
    decode_record,
    encode_record,
    roster_key,
)

GROUP = "g"
EXPIRE_MS = int(EXPIRE_AFTER_S * 1000)


class Log:
    """A roster topic partition: offsets in order, times in ms as the broker stamps them."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None, int, int, str | None]] = []

    def publish(
        self,
        name: str,
        partitions: list[int],
        at_ms: int,
        incarnation: str = "1",
        group: str = GROUP,
    ) -> None:
        member = GroupMember(name, f"http://{name}:8080", tuple(("t", p) for p in partitions))
        value = encode_record(RosterRecord(group, member, incarnation))
        self.records.append((roster_key(group, name), value, len(self.records), at_ms, None))

    def tombstone(self, name: str, at_ms: int, incarnation: str = "1") -> None:
        self.records.append((roster_key(GROUP, name), None, len(self.records), at_ms, incarnation))

    def fold(self, start: int = 0) -> RosterLog:
        roster = RosterLog(GROUP)
        for record in self.records[start:]:
            roster.apply(*record)
        return roster


def url(name: str) -> str:
    return f"http://{name}:8080"


def test_the_record_round_trips_and_noise_is_ignored() -> None:
    member = GroupMember("w1", "https://10.0.0.7:8443", (("a", 0), ("b", 3)))
    record = RosterRecord(GROUP, member, "abc")
    assert decode_record(encode_record(record)) == record
    assert decode_record(b"not json") is None
    assert decode_record(b'{"name": "w1"}') is None


def test_owners_and_members_come_from_the_members_records() -> None:
    log = Log()
    log.publish("w1", [0, 1], 1_000)
    log.publish("w2", [2], 1_100)
    view = log.fold().view([("t", p) for p in range(3)])
    assert view.settled
    assert [m.name for m in view.members] == ["w1", "w2"]
    assert view.owners == {("t", 0): url("w1"), ("t", 1): url("w1"), ("t", 2): url("w2")}


def test_a_newer_claim_wins_and_heartbeats_of_the_older_claim_do_not_take_it_back() -> None:
    """w1 still lists partition 1 (it has not published the revocation yet): w2's claim is
    newer in the log, so w2 owns it, also after w1 repeats its old record."""
    log = Log()
    log.publish("w1", [0, 1], 1_000)
    log.publish("w2", [1], 1_100)
    log.publish("w1", [0, 1], 1_200)  # a heartbeat with the stale claim
    view = log.fold().view([("t", 0), ("t", 1)])
    assert view.owners[("t", 1)] == url("w2")
    assert not view.settled  # two claims: a handoff is under way
    log.publish("w1", [0], 1_300)
    assert log.fold().view([("t", 0), ("t", 1)]).settled


def test_a_silent_member_expires_by_the_rosters_own_time_not_while_nothing_is_written() -> None:
    log = Log()
    log.publish("w1", [0], 1_000)
    log.publish("w2", [1], 1_000)
    # Broker away: no records at all, whatever the wall clock says; both stand.
    assert {m.name for m in log.fold().view().members} == {"w1", "w2"}
    log.publish("w1", [0], 1_000 + EXPIRE_MS)  # w2 was SIGKILLed; w1 keeps beating
    assert {m.name for m in log.fold().view().members} == {"w1", "w2"}
    log.publish("w1", [0], 1_001 + EXPIRE_MS)
    view = log.fold().view([("t", 0), ("t", 1)])
    assert [m.name for m in view.members] == ["w1"]
    assert ("t", 1) not in view.owners
    assert not view.settled  # partition 1 has nobody until the group gives it to someone


def test_a_tombstone_removes_its_incarnation_only() -> None:
    log = Log()
    log.publish("w1", [0], 1_000, incarnation="old")
    log.publish("w1", [0], 1_100, incarnation="new")  # restarted before the old one's tombstone
    log.tombstone("w1", 1_200, incarnation="old")
    assert [m.name for m in log.fold().view().members] == ["w1"]
    log.tombstone("w1", 1_300, incarnation="new")
    assert log.fold().view().members == ()


def test_a_restarted_member_claims_anew() -> None:
    """A new incarnation's claims start at its first record: a partition another member took
    meanwhile stays with the newer claim."""
    log = Log()
    log.publish("w2", [1], 1_000)
    log.publish("w1", [0, 1], 900, incarnation="a")
    log.publish("w1", [0, 1], 1_100, incarnation="b")
    assert log.fold().view().owners[("t", 1)] == url("w1")


def test_other_groups_on_the_same_roster_are_ignored() -> None:
    log = Log()
    log.publish("w1", [0], 1_000)
    log.publish("w9", [0], 1_100, group="other")
    assert log.fold().view().owners == {("t", 0): url("w1")}


@given(
    st.lists(
        st.tuples(st.sampled_from(["w1", "w2", "w3"]), st.sets(st.integers(0, 3), max_size=4)),
        min_size=1,
        max_size=12,
    )
)
def test_a_follower_reading_the_compacted_roster_agrees_with_one_that_read_it_all(
    records: list[tuple[str, set[int]]],
) -> None:
    """Once the group is settled, a newly started follower (which reads only each member's
    latest record, what compaction leaves) sees the owners every other follower sees."""
    log = Log()
    for at, (name, partitions) in enumerate(records):
        log.publish(name, sorted(partitions), 1_000 + at)
    full = log.fold().view([("t", p) for p in range(4)])
    latest = {key: i for i, (key, *_rest) in enumerate(log.records)}
    compacted = RosterLog(GROUP)
    for i in sorted(latest.values()):
        compacted.apply(*log.records[i])
    if full.settled:
        assert compacted.view().owners == full.owners
    assert compacted.view().members == full.members
