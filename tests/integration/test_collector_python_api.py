"""`omnid.adapters.publish`, the collector's Python twin, on a real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer

from omnid.adapters import EventSink, publish
from omnid.config import Settings
from omnid.contracts import AvroCodec, Channel, decode_channel_event, events_topic, make_producer
from omnid.errors import InvalidEvent, RejectionReason

pytestmark = pytest.mark.kafka


@pytest.fixture
def call_centre_topic(events_topics: Any) -> Iterator[tuple[str, str]]:
    with events_topics("publish", [Channel.CALL_CENTRE]) as prefix:
        yield prefix, events_topic(Channel.CALL_CENTRE, prefix)


def test_publish_returns_after_kafka_has_the_event(
    kafka_bootstrap: str, kafka_config: dict[str, str], call_centre_topic: tuple[str, str]
) -> None:
    prefix, topic = call_centre_topic
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    when = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    with EventSink(make_producer(settings)) as sink:
        codec = AvroCodec.from_settings(settings)
        record = publish(
            "call_centre",
            "genesys",
            "call_ended",
            {"phone": "+44 7700 900123", "crm_id": "CRM-1"},
            traits={"preferred_store": "LDN-01"},
            properties={"duration_s": 312},
            consent={"sms_marketing": True},
            occurred_at=when,
            sink=sink,
            codec=codec,
            topic_prefix=prefix,
        )
        with pytest.raises(InvalidEvent) as raised:
            publish(
                "call_centre",
                "genesys",
                "call_ended",
                {},
                sink=sink,
                codec=codec,
                topic_prefix=prefix,
            )
        assert raised.value.reason is RejectionReason.NO_IDENTIFIER

    consumer = Consumer(
        {**kafka_config, "group.id": f"test-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        message = None
        while message is None or message.error():
            message = consumer.poll(1.0)
    finally:
        consumer.close()
    event = decode_channel_event(codec, message.value())
    assert message.key() == record["event_id"].encode()
    assert event["event_id"] == record["event_id"] and event["event_id"].startswith("sha256:")
    assert event["identifiers"] == [
        {"type": "phone", "value": "+44 7700 900123"},
        {"type": "crm_id", "value": "CRM-1"},
    ]
    assert event["occurred_at"] == when
    assert (event["channel"], event["source"], event["event_type"]) == (
        "call_centre",
        "genesys",
        "call_ended",
    )
    assert event["traits"] == {"preferred_store": "LDN-01"}
    assert event["properties"] == {"duration_s": 312}
    assert event["consent"] == [{"purpose": "sms_marketing", "granted": True}]
