"""Encodes workload events once, so every system in a run is fed the very same bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from omnid.contracts import CHANNEL_EVENT, AvroCodec, events_topic, first_identifier_key


@dataclass(frozen=True)
class EncodedEvent:
    """One ChannelEvent as it goes on the wire: Avro bytes, partition key, channel topic."""

    event_id: str
    channel: str
    key: bytes
    value: bytes

    def topic(self, prefix: str) -> str:
        return events_topic(self.channel, prefix)


def encode_events(codec: AvroCodec, records: Iterable[Mapping[str, Any]]) -> Iterator[EncodedEvent]:
    """Avro-encodes each record, including the ones the pipeline must refuse (no identifier).

    Adapters refuse those before Kafka; the benchmark sends them anyway because the pipeline
    must dead-letter what a misbehaving producer writes straight to the topic.
    """
    for record in records:
        # Falls back to the event id like the simulator does, so both place events alike.
        key = first_identifier_key(record) or record["event_id"]
        yield EncodedEvent(
            event_id=record["event_id"],
            channel=record["channel"],
            key=key.encode(),
            value=codec.encode(CHANNEL_EVENT, record),
        )
