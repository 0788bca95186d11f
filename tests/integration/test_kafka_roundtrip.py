"""A real broker carries keys, values and headers intact and keeps order within a partition."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

pytestmark = pytest.mark.kafka

PARTITIONS = 3
MESSAGES_PER_PARTITION = 20


def consume_all(config: dict[str, str], topic: str, expected: int) -> list[Message]:
    consumer = Consumer(
        config
        | {
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
        }
    )
    consumer.subscribe([topic])
    received: list[Message] = []
    try:
        # Bounded by polls, not by a clock: a broken broker fails the count assertion below.
        for _ in range(120):
            for message in consumer.consume(num_messages=100, timeout=1.0):
                if message.error() and message.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(message.error().str())
                if not message.error():
                    received.append(message)
            if len(received) >= expected:
                break
    finally:
        consumer.close()
    return received


def test_produced_records_come_back_with_keys_values_headers_and_partition_order(
    kafka_config: dict[str, str], make_topic
) -> None:
    topic = make_topic("roundtrip", partitions=PARTITIONS)
    producer = Producer(kafka_config | {"enable.idempotence": "true", "acks": "all"})
    sent: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = {}
    for partition in range(PARTITIONS):
        for sequence in range(MESSAGES_PER_PARTITION):
            key = f"email:customer{partition}@example.com".encode()
            value = f"event {sequence} on {partition}".encode() + bytes([0, 255, sequence])
            headers = [("source", b"web"), ("sequence", str(sequence).encode())]
            producer.produce(topic, value=value, key=key, headers=headers, partition=partition)
            sent.setdefault(partition, []).append((key, value, headers))
    assert producer.flush(30) == 0

    received = consume_all(kafka_config, topic, PARTITIONS * MESSAGES_PER_PARTITION)

    by_partition: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = {}
    for message in received:
        by_partition.setdefault(message.partition(), []).append(
            (message.key(), message.value(), message.headers())
        )
    assert by_partition == sent


def test_keyed_records_of_one_key_land_in_one_partition_in_send_order(
    kafka_config: dict[str, str], make_topic
) -> None:
    topic = make_topic("keyed", partitions=PARTITIONS)
    producer = Producer(kafka_config | {"enable.idempotence": "true"})
    keys = [f"profile-{n}".encode() for n in range(5)]
    for sequence in range(10):
        for key in keys:
            producer.produce(topic, key=key, value=str(sequence).encode())
    assert producer.flush(30) == 0

    received = consume_all(kafka_config, topic, len(keys) * 10)

    partitions_of_key: dict[bytes, set[int]] = {}
    values_of_key: dict[bytes, list[bytes]] = {}
    for message in received:
        partitions_of_key.setdefault(message.key(), set()).add(message.partition())
        values_of_key.setdefault(message.key(), []).append(message.value())
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())
    assert values_of_key == {key: [str(n).encode() for n in range(10)] for key in keys}
