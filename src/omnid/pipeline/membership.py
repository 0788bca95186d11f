"""Who is in the worker group and what each member owns, as the members themselves tell it on
the roster topic (`omnid.worker-roster`, compacted, one partition, keyed by group and member):
peers find each other's lookup API this way, and standby replicas are placed from it.

Why not the broker's describe of the group: a coordinator-targeted admin request in flight
when the connection drops can abort the whole process with librdkafka 2.16
(`rd_kafka_enq_once_del_source_return: Assertion eonce->refcnt > 0`; it took a worker down at
a broker's return in the chaos run). A worker only produces to and consumes from the roster.

This module is the pure part: the record format and the fold of the roster log into a view.
Every follower reads the same log in the same order, so every worker computes the same view.
- A member's record lists its partitions, its lookup URL and its incarnation (a new one on
  every start). It is published on every assignment change and every HEARTBEAT_S.
- A partition claimed by two members (a handoff whose old owner has not published its
  revocation yet, or a dead member's last record) belongs to the newer claim: the one whose
  member has listed it without a break since the later roster offset (claims are ordered by the
  log, not by clocks).
- A member whose last record is EXPIRE_AFTER_S older than the newest record on the roster is
  gone (SIGKILLed). Record times are the broker's (LogAppendTime) and the newest record is
  usually a member's own heartbeat, so while the broker is away nothing expires: the last
  known owners stand. A member stopped by SIGTERM publishes a tombstone and is gone at once.

The roster holds worker names, partition numbers and host:port URLs only, never personal data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

# How often a member repeats its record, and after how long without one (in the roster's own
# time) it counts as gone: above the group's session timeout (6 s, deploy/kafka), so a member
# is dropped from the roster about when the broker takes its partitions away.
HEARTBEAT_S = 2.0
EXPIRE_AFTER_S = 8.0

INCARNATION_HEADER = "omnid-incarnation"


@dataclass(frozen=True)
class GroupMember:
    """A worker of the group: its name, its lookup API's URL and the partitions it owns."""

    name: str
    url: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GroupView:
    """The group's live workers and each claimed partition's owner (by URL). `settled` when
    every partition of `expected` has exactly one claim: no handoff or failover under way."""

    settled: bool
    members: tuple[GroupMember, ...]
    owners: dict[tuple[str, int], str]


@dataclass(frozen=True)
class RosterRecord:
    """What one member publishes about itself."""

    group: str
    member: GroupMember
    incarnation: str


def roster_key(group: str, name: str) -> bytes:
    return f"{group}/{name}".encode()


def encode_record(record: RosterRecord) -> bytes:
    member = record.member
    return json.dumps(
        {
            "group": record.group,
            "name": member.name,
            "url": member.url,
            "incarnation": record.incarnation,
            "partitions": sorted([topic, partition] for topic, partition in member.partitions),
        },
        separators=(",", ":"),
    ).encode()


def decode_record(value: bytes) -> RosterRecord | None:
    """The record, or None for anything else (a roster written by a newer release, noise)."""
    try:
        body = json.loads(value)
        partitions = tuple((str(t), int(p)) for t, p in body["partitions"])
        member = GroupMember(str(body["name"]), str(body["url"]), partitions)
        return RosterRecord(str(body["group"]), member, str(body["incarnation"]))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class _Entry:
    member: GroupMember
    incarnation: str
    at_ms: int
    # Partition -> roster offset from which this member has claimed it without a break.
    since: dict[tuple[str, int], int]


@dataclass
class RosterLog:
    """The roster of one group, folded record by record in log order (pure)."""

    group: str
    expire_after_ms: int = int(EXPIRE_AFTER_S * 1000)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _newest_ms: int = 0

    def apply(
        self,
        key: bytes,
        value: bytes | None,
        offset: int,
        at_ms: int,
        incarnation: str | None = None,
    ) -> None:
        """One roster record: `value` None is a tombstone (of `incarnation`, from its header)."""
        self._newest_ms = max(self._newest_ms, at_ms)
        group, _, name = key.decode(errors="replace").partition("/")
        if group != self.group:
            return
        if value is None:
            entry = self._entries.get(name)
            if entry is not None and incarnation in (None, entry.incarnation):
                del self._entries[name]
            return
        record = decode_record(value)
        if record is None or record.group != self.group or record.member.name != name:
            return
        previous = self._entries.get(name)
        kept = previous.since if previous and previous.incarnation == record.incarnation else {}
        since = {tp: kept.get(tp, offset) for tp in record.member.partitions}
        self._entries[name] = _Entry(record.member, record.incarnation, at_ms, since)

    def view(self, expected: Iterable[tuple[str, int]] = ()) -> GroupView:
        live = [
            entry
            for _name, entry in sorted(self._entries.items())
            if self._newest_ms - entry.at_ms <= self.expire_after_ms
        ]
        newest: dict[tuple[str, int], tuple[int, str]] = {}
        claims: dict[tuple[str, int], int] = {}
        for entry in live:
            for tp, since in entry.since.items():
                claims[tp] = claims.get(tp, 0) + 1
                if tp not in newest or since > newest[tp][0]:
                    newest[tp] = (since, entry.member.url)
        settled = all(claims.get(tp, 0) == 1 for tp in expected) and all(
            count == 1 for count in claims.values()
        )
        return GroupView(
            settled=settled,
            members=tuple(entry.member for entry in live),
            owners={tp: url for tp, (_since, url) in newest.items()},
        )
