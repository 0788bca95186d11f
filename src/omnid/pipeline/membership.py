"""Who is in the worker group and what each member owns, as the broker describes it: peers
find each other's lookup API this way, and standby replicas are chosen from it."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

# Asking the broker who owns what must not make a caller hang while the broker is away.
DESCRIBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class GroupMember:
    """A worker in the consumer group, as its client.id ("omnid-worker NAME URL") tells."""

    name: str
    url: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GroupView:
    """The group's omnid workers; `settled` once no rebalance is under way (assignments final)."""

    settled: bool
    members: tuple[GroupMember, ...]


def describe_group(admin: AdminClient, group: str) -> GroupView:
    """One describe request (blocking, at most DESCRIBE_TIMEOUT_S)."""
    description = admin.describe_consumer_groups([group])[group].result(DESCRIBE_TIMEOUT_S)
    members = []
    for member in description.members:
        parts = member.client_id.split(" ")
        if len(parts) != 3 or parts[0] != "omnid-worker":
            continue
        assigned = tuple((tp.topic, tp.partition) for tp in member.assignment.topic_partitions)
        members.append(GroupMember(name=parts[1], url=parts[2], partitions=assigned))
    return GroupView(description.state == ConsumerGroupState.STABLE, tuple(members))


def group_members(admin: AdminClient, group: str) -> list[GroupMember]:
    """The group's omnid workers (blocking: one describe request)."""
    return list(describe_group(admin, group).members)
