"""The pipeline's topics from outside: publish channel events, wait until every input is
consumed and committed (the drain), read a whole topic to its committed end, the latest profile
of each id. Committed-offset questions are asked again on a retriable error, as right after a
broker restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from omnid.contracts import (
    CHANNEL_EVENT,
    AvroCodec,
    OutputSender,
    events_topic,
    first_identifier_key,
)
from omnid.kafka.reader import read_records
from omnid.pipeline.outage import Fault, classify, kafka_error
from omnid.pipeline.topic_names import PipelineTopics

T = TypeVar("T")


def publish_events(
    config: Mapping[str, str],
    topics: PipelineTopics,
    records: Iterable[Mapping[str, Any]],
    codec: AvroCodec | None = None,
) -> int:
    """Publishes ChannelEvent dicts to their channel's topic, keyed by the first identifier."""
    codec = codec or AvroCodec.from_settings()
    producer = Producer({**config, "enable.idempotence": True, "linger.ms": 5})
    sender = OutputSender(producer)
    sent = 0
    for record in records:
        key = first_identifier_key(record)
        # Encoded without the adapters' checks: workers must cope with what any producer sends.
        sender.send(
            events_topic(record["channel"], topics.prefix),
            key.encode() if key else None,
            codec.encode(CHANNEL_EVENT, record),
        )
        sent += 1
    producer.flush(60)
    return sent


def committed_ends(
    config: Mapping[str, str],
    admin: AdminClient,
    partitions: Iterable[TopicPartition],
    timeout: float = 60.0,
) -> dict[tuple[str, int], int]:
    """The read-committed end offset of each partition. Right after a broker restart the
    answer can be a retriable error (UNKNOWN_LEADER_EPOCH: the client's metadata predates the
    restart): asked again, by a new admin client, until `timeout`."""
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    clients = [admin]

    def ends() -> dict[tuple[str, int], int]:
        futures = clients[-1].list_offsets(
            {tp: OffsetSpec.latest() for tp in wanted},
            isolation_level=IsolationLevel.READ_COMMITTED,
        )
        try:
            return {(tp.topic, tp.partition): f.result(30).offset for tp, f in futures.items()}
        except KafkaException:
            clients.append(AdminClient(dict(config)))  # the next try asks with a new client
            raise

    return retried_while_retriable(ends, timeout)


def undelivered(
    config: Mapping[str, str], group: str, topics: Iterable[str], timeout: float = 60.0
) -> int:
    """_undelivered, asked again on a retriable error until `timeout`: right after a broker
    restart the group coordinator answers COORDINATOR_LOAD_IN_PROGRESS for a while."""
    wanted = list(topics)
    return retried_while_retriable(lambda: _undelivered(config, group, wanted), timeout)


def retried_while_retriable(call: Callable[[], T], timeout: float) -> T:
    """`call()`, once a second again while it raises a retriable Kafka error, until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaException as error:
            cause = kafka_error(error)
            if cause is None or classify(cause) is not Fault.RETRIABLE:
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def _undelivered(config: Mapping[str, str], group: str, topics: Iterable[str]) -> int:
    """Committed records on `topics` that `group` has not committed as processed yet.

    Offset arithmetic is not enough: transaction markers and aborted records take offsets too,
    so a partition whose committed offset is below its end is read to see if data is left."""
    admin = AdminClient(dict(config))
    metadata = admin.list_topics(timeout=10)
    partitions = [TopicPartition(t, p) for t in topics for p in metadata.topics[t].partitions]
    ends = committed_ends(config, admin, partitions)
    committed_future = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, partitions)], require_stable=True
    )[group]
    committed = {
        (tp.topic, tp.partition): max(tp.offset, 0)
        for tp in committed_future.result(30).topic_partitions
    }
    behind = []
    for tp in partitions:
        end = ends[(tp.topic, tp.partition)]
        start = committed.get((tp.topic, tp.partition), 0)
        if end > start:
            behind.append((TopicPartition(tp.topic, tp.partition, start), end))
    if not behind:
        return 0
    consumer = Consumer(
        {
            **config,
            "group.id": f"omnid-drain-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    found = 0
    try:
        consumer.assign([tp for tp, _end in behind])
        ends_by_tp = {(tp.topic, tp.partition): end for tp, end in behind}
        deadline = time.monotonic() + 5
        while ends_by_tp and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is None:
                    found += 1
            for key, end in list(ends_by_tp.items()):
                position = consumer.position([TopicPartition(*key)])[0].offset
                if position >= end:
                    del ends_by_tp[key]
        found += len(ends_by_tp)  # not read to the end in time: count as undelivered
    finally:
        consumer.close()
    return found


def wait_drained(
    config: Mapping[str, str], group: str, topics: PipelineTopics, timeout: float
) -> None:
    """Until every input (events and both command topics) is consumed and committed, twice in a
    row: a command in flight between stages shows up as lag on its topic."""
    deadline = time.monotonic() + timeout
    zero_in_a_row = 0
    while time.monotonic() < deadline:
        zero_in_a_row = zero_in_a_row + 1 if undelivered(config, group, topics.inputs) == 0 else 0
        if zero_in_a_row >= 3:
            return
        time.sleep(0.5)
    raise TimeoutError(f"pipeline did not drain in {timeout:.0f}s")


def read_topic(
    config: Mapping[str, str], topic: str, idle_s: float = 2.0
) -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    """Every committed record of `topic` from the beginning, up to its committed end now (or
    until `idle_s` without a record): (key, value, headers)."""
    admin = AdminClient(dict(config))
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    ends = committed_ends(config, admin, [TopicPartition(topic, p) for p in partitions])
    return [
        (record.key, record.value, record.headers)
        for record in read_records(
            config, topic, ends={p: end for (_t, p), end in ends.items()}, idle_s=idle_s
        )
    ]


def latest_profiles(
    config: Mapping[str, str], topics: PipelineTopics, codec: AvroCodec | None = None
) -> dict[str, dict[str, Any]]:
    """The current profile per id on the profile-updates topic (tombstoned ids left out). Only
    the last update of each id is decoded: a million-event run writes several per profile."""
    codec = codec or AvroCodec.from_settings()
    latest: dict[str, bytes | None] = {}
    for key, value, _headers in read_topic(config, topics.profile_updates):
        latest[key] = value
    return {key: codec.decode(value).record for key, value in latest.items() if value is not None}
