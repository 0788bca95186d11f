"""A small Python API for channel systems: build a ChannelEvent, publish it, wait for Kafka."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from omnid.adapters.sink import EventSink
from omnid.config import Settings
from omnid.contracts.channel_event import (
    Channel,
    Scalar,
    deterministic_event_id,
    encode_channel_event,
    epoch_millis,
    events_topic,
    new_channel_event,
    now_millis,
)
from omnid.contracts.codec import AvroCodec
from omnid.contracts.producer import make_producer

_shared: tuple[EventSink, AvroCodec] | None = None
_shared_lock = threading.Lock()


def _shared_sink() -> tuple[EventSink, AvroCodec]:
    global _shared
    with _shared_lock:
        if _shared is None:
            settings = Settings()
            _shared = (EventSink(make_producer(settings)), AvroCodec.from_settings(settings))
        return _shared


def publish(
    channel: Channel | str,
    source: str,
    event_type: str,
    identifiers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    traits: Mapping[str, Scalar] | None = None,
    properties: Mapping[str, Scalar] | None = None,
    purchase: Mapping[str, Any] | None = None,
    consent: Mapping[str, bool] | None = None,
    occurred_at: datetime | int | None = None,
    event_id: str | None = None,
    sink: EventSink | None = None,
    codec: AvroCodec | None = None,
    topic_prefix: str | None = None,
    max_event_bytes: int | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Publish one event to `omnid.events.<channel>` and return it once Kafka acknowledged it.

    `identifiers` maps type to raw value (`{"email": "Ann@Example.com"}`) or is a list of
    pairs when a type repeats. Without `event_id` the id is derived from the content
    (occurred_at included), so a retried call with the same arguments is one logical event.
    Raises InvalidEvent for a bad event and DeliveryFailed when Kafka did not take it.
    """
    pairs = list(identifiers.items() if isinstance(identifiers, Mapping) else identifiers)
    received = now_millis()
    if isinstance(occurred_at, datetime):
        occurred = epoch_millis(occurred_at)
    else:
        occurred = received if occurred_at is None else occurred_at
    record = new_channel_event(
        event_id=event_id
        or deterministic_event_id(
            str(channel), source, event_type, pairs, traits, properties, purchase, consent, occurred
        ),
        channel=Channel(channel),
        source=source,
        event_type=event_type,
        identifiers=pairs,
        occurred_at=occurred,
        received_at=received,
        traits=traits,
        properties=properties,
        purchase=purchase,
        consent=list(consent.items()) if consent else None,
    )
    if sink is None or codec is None:
        shared_sink, shared_codec = _shared_sink()
        sink, codec = sink or shared_sink, codec or shared_codec
    settings = Settings()
    limit = max_event_bytes if max_event_bytes is not None else settings.max_event_bytes
    prefix = settings.topic_prefix if topic_prefix is None else topic_prefix
    payload = encode_channel_event(codec, record, limit)
    sink.send(events_topic(channel, prefix), record["event_id"].encode(), payload).result(timeout)
    return record
