"""Encodes workload events once, so every system in a run is fed the very same bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from omnid.contracts import AvroCodec, events_topic
from omnid.contracts.channel_event import CHANNEL_EVENT
from omnid.kafka.topology import prefixed_name


@dataclass(frozen=True)
class EncodedEvent:
    """One ChannelEvent as it goes on the wire: Avro bytes, partition key, channel topic."""

    event_id: str
    channel: str
    key: bytes
    value: bytes

    def topic(self, prefix: str) -> str:
        return prefixed_name(prefix, events_topic(self.channel))


def encode_events(codec: AvroCodec, records: Iterable[Mapping[str, Any]]) -> Iterator[EncodedEvent]:
    """Avro-encodes each record, including the ones the pipeline must refuse (no identifier).

    Adapters refuse those before Kafka; the benchmark sends them anyway because the pipeline
    must dead-letter what a misbehaving producer writes straight to the topic.
    """
    for record in records:
        identifiers = record.get("identifiers") or []
        key = (
            f"{identifiers[0]['type']}:{identifiers[0]['value']}"
            if identifiers
            else record["event_id"]
        )
        yield EncodedEvent(
            event_id=record["event_id"],
            channel=record["channel"],
            key=key.encode(),
            value=codec.encode(CHANNEL_EVENT, record),
        )


def produce(producer: Producer, topic: str, key: bytes | None, value: bytes | None) -> None:
    """Produce, waiting for queue space instead of failing when the client buffer is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)
