"""Analytics SDKs nobody here wrote — segment-analytics-python and rudder-sdk-python — pointed at
the collector: what they send reaches Kafka as ChannelEvents, checked field by field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from omnid.adapters.collector import BackgroundCollector, collector_from_settings
from omnid.config import Settings
from omnid.contracts import Channel, events_topic

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

WRITE_KEY = "dev-web-key"  # streams/write-keys.yaml: channel web, source web-shop
CLIENTS = {"segment": SegmentClient, "rudder": RudderClient}
WHEN = datetime(2026, 11, 20, 9, 30, 15, 250_000, tzinfo=UTC)


@pytest.fixture
def web_topic(events_topics: Any) -> Iterator[tuple[str, str]]:
    with events_topics("sdk", [Channel.WEB]) as prefix:
        yield prefix, events_topic(Channel.WEB, prefix)


@pytest.fixture
def collector_url(kafka_bootstrap: str, web_topic: tuple[str, str]) -> Iterator[str]:
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    with BackgroundCollector(
        collector_from_settings(settings, topic_prefix=web_topic[0])
    ) as server:
        yield server.url


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
def test_sdk_identify_track_page_alias_reach_kafka_field_by_field(
    sdk: str,
    collector_url: str,
    web_topic: tuple[str, str],
    read_channel_events: Callable[..., list[dict[str, Any]]],
) -> None:
    errors: list[Any] = []
    client = CLIENTS[sdk](
        WRITE_KEY, host=collector_url, sync_mode=True, on_error=lambda e, batch: errors.append(e)
    )
    sent_from = datetime.now(UTC)
    client.identify(
        "user-42",
        {
            "email": "Ann.Smith@Example.com",
            "phone": "+44 7700 900123",
            "name": "Ann",
            "address": {"city": "Leeds"},
        },
        context={
            "device": {"id": "device-7"},
            "externalIds": [
                {"id": "LC-9001", "type": "loyalty_id", "collection": "users", "encoding": "none"}
            ],
        },
        timestamp=WHEN,
        anonymous_id="anon-1",
        message_id="m-identify",
    )
    client.track(
        "user-42",
        "Order Completed",
        {"order_id": "o-1", "revenue": 59.5, "currency": "gbp"},
        timestamp=WHEN,
        message_id="m-track",
    )
    client.page(
        "user-42",
        "Docs",
        "Pricing",
        {"url": "https://shop.example/pricing"},
        timestamp=WHEN,
        message_id="m-page",
    )
    client.alias("anon-1", "user-42", timestamp=WHEN, message_id="m-alias")
    sent_until = datetime.now(UTC)
    assert errors == []

    identify, track, page, alias = read_channel_events(web_topic[1], count=4)
    for event in (identify, track, page, alias):
        assert (event["channel"], event["source"]) == ("web", "web-shop")
        assert event["occurred_at"] == WHEN
        assert millis(sent_from) - 1 <= millis(event["received_at"]) <= millis(sent_until) + 1

    assert identify["event_id"] == "m-identify" and identify["event_type"] == "identify"
    assert identify["identifiers"] == [
        {"type": "user_id", "value": "user-42"},
        {"type": "anonymous_id", "value": "anon-1"},
        {"type": "email", "value": "Ann.Smith@Example.com"},
        {"type": "phone", "value": "+44 7700 900123"},
        {"type": "device_id", "value": "device-7"},
        {"type": "loyalty_id", "value": "LC-9001"},
    ]
    assert identify["traits"] == {
        "email": "Ann.Smith@Example.com",
        "phone": "+44 7700 900123",
        "name": "Ann",
        "address.city": "Leeds",
    }

    assert (track["event_id"], track["event_type"]) == ("m-track", "purchase")
    assert track["purchase"] == {
        "order_id": "o-1",
        "amount": 59.5,
        "currency": "GBP",
        "amount_decimal": Decimal("59.5000"),
    }
    assert track["properties"]["event"] == "Order Completed"
    assert track["identifiers"] == [{"type": "user_id", "value": "user-42"}]

    assert (page["event_id"], page["event_type"]) == ("m-page", "page")
    assert page["properties"]["url"] == "https://shop.example/pricing"
    assert (page["properties"]["name"], page["properties"]["category"]) == ("Pricing", "Docs")

    assert (alias["event_id"], alias["event_type"]) == ("m-alias", "alias")
    assert alias["identifiers"] == [
        {"type": "user_id", "value": "user-42"},
        {"type": "anonymous_id", "value": "anon-1"},
    ]


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
def test_sdk_background_batches_arrive_complete(
    sdk: str,
    collector_url: str,
    web_topic: tuple[str, str],
    read_channel_events: Callable[..., list[dict[str, Any]]],
) -> None:
    """The SDKs' default mode queues calls and posts them together to /v1/batch."""
    errors: list[Any] = []
    client = CLIENTS[sdk](
        WRITE_KEY, host=collector_url, upload_size=25, on_error=lambda e, batch: errors.append(e)
    )
    for n in range(60):
        client.track(
            f"user-{n % 7}", "Viewed Product", {"sku": f"sku-{n}", "n": n}, message_id=f"batch-{n}"
        )
    client.flush()
    client.shutdown()
    assert errors == []
    events = read_channel_events(web_topic[1], count=60)
    assert sorted(e["event_id"] for e in events) == sorted(f"batch-{n}" for n in range(60))
    by_id = {e["event_id"]: e for e in events}
    for n in range(60):
        event = by_id[f"batch-{n}"]
        assert event["properties"] == {"sku": f"sku-{n}", "n": n, "event": "Viewed Product"}
        assert event["identifiers"] == [{"type": "user_id", "value": f"user-{n % 7}"}]
