"""Segment messages become ChannelEvents field by field; malformed ones are refused precisely."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnid.adapters.segment import (
    MESSAGE_TYPES,
    WriteKeyTarget,
    batch_messages,
    channel_event_from_segment,
)
from omnid.contracts import AvroCodec, Channel, default_catalog, encode_channel_event
from omnid.errors import InvalidEvent, RejectionReason

WEB = WriteKeyTarget(Channel.WEB, "web-shop")
RECEIVED = 1_763_900_000_000


def mapped(message: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    return channel_event_from_segment(message, WEB, RECEIVED, kind)


def refusal(message: Any, kind: str | None = None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as raised:
        channel_event_from_segment(message, WEB, RECEIVED, kind)
    return raised.value


def test_identify_maps_every_identifier_source() -> None:
    event = mapped(
        {
            "userId": "u-1",
            "anonymousId": "a-1",
            "messageId": "m-1",
            "timestamp": "2026-11-23T10:00:00.250Z",
            "traits": {"email": "Ann@Example.com", "phone": "+44 7700 900123", "name": "Ann"},
            "context": {
                "device": {"id": "dev-9"},
                "externalIds": [{"id": "LC-9001", "type": "loyalty_id", "collection": "users"}],
            },
        },
        "identify",
    )
    assert event["identifiers"] == [
        {"type": "user_id", "value": "u-1"},
        {"type": "anonymous_id", "value": "a-1"},
        {"type": "email", "value": "Ann@Example.com"},
        {"type": "phone", "value": "+44 7700 900123"},
        {"type": "device_id", "value": "dev-9"},
        {"type": "loyalty_id", "value": "LC-9001"},
    ]
    assert event["event_id"] == "m-1"
    assert (
        event["occurred_at"]
        == int(datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()) * 1000 + 250
    )
    assert event["received_at"] == RECEIVED
    assert (event["channel"], event["source"], event["event_type"]) == (
        "web",
        "web-shop",
        "identify",
    )
    assert event["traits"]["name"] == "Ann"


def test_email_from_context_traits_when_traits_have_none() -> None:
    event = mapped(
        {"anonymousId": "a-1", "context": {"traits": {"email": "b@example.com"}}}, "page"
    )
    assert {"type": "email", "value": "b@example.com"} in event["identifiers"]


def test_nested_traits_are_flattened_and_lists_kept_as_json() -> None:
    event = mapped(
        {"userId": "u", "traits": {"address": {"city": "Leeds"}, "tags": ["a", "b"]}}, "identify"
    )
    assert event["traits"] == {"address.city": "Leeds", "tags": '["a", "b"]'}


def test_order_completed_becomes_a_purchase() -> None:
    event = mapped(
        {
            "userId": "u",
            "event": "Order Completed",
            "properties": {"order_id": "o-7", "revenue": 30, "currency": "eur"},
        },
        "track",
    )
    assert event["event_type"] == "purchase"
    assert event["purchase"] == {
        "order_id": "o-7",
        "amount": 30.0,
        "currency": "EUR",
        "amount_decimal": Decimal("30.0000"),
    }
    assert event["properties"]["event"] == "Order Completed"


def test_alias_links_previous_id_as_anonymous_id() -> None:
    event = mapped({"type": "alias", "userId": "u-1", "previousId": "a-1"})
    assert event["identifiers"] == [
        {"type": "user_id", "value": "u-1"},
        {"type": "anonymous_id", "value": "a-1"},
    ]


def test_group_traits_stay_off_the_person() -> None:
    event = mapped(
        {"userId": "u", "groupId": "g-1", "traits": {"email": "ceo@corp.example"}}, "group"
    )
    assert event["traits"] == {}
    assert event["properties"] == {"group_id": "g-1", "group.email": "ceo@corp.example"}
    assert [i["type"] for i in event["identifiers"]] == ["user_id"]


def test_missing_message_id_gets_a_deterministic_event_id() -> None:
    message = {"userId": "u", "timestamp": "2026-11-23T10:00:00Z"}
    assert (
        mapped(dict(message), "identify")["event_id"]
        == mapped(dict(message), "identify")["event_id"]
    )
    assert (
        mapped(dict(message), "identify")["event_id"]
        != mapped({**message, "userId": "v"}, "identify")["event_id"]
    )


def test_integers_beyond_avro_long_keep_their_digits_as_text() -> None:
    event = mapped({"userId": "u", "traits": {"big": 2**70, "fine": 2**62}}, "identify")
    assert event["traits"] == {"big": str(2**70), "fine": 2**62}


@pytest.mark.parametrize("value", [42, 42.0, True])
def test_numeric_user_id_is_refused_as_the_readme_says(value: object) -> None:
    # 42 and 42.0 would become two people; the SDKs send ids as text already.
    with pytest.raises(InvalidEvent, match="userId must be a string") as refused:
        mapped({"userId": value}, "identify")
    assert refused.value.reason is RejectionReason.INVALID_FIELD


@pytest.mark.parametrize(
    ("message", "kind", "reason", "words"),
    [
        ({"traits": {"name": "x"}}, "identify", RejectionReason.NO_IDENTIFIER, "missing ids"),
        ({"userId": ["u"]}, "identify", RejectionReason.INVALID_FIELD, "userId must be a string"),
        (
            {"userId": "u", "traits": "x"},
            "identify",
            RejectionReason.INVALID_FIELD,
            "traits must be an object",
        ),
        (
            {"userId": "u", "traits": {"email": {"a": 1}}},
            "identify",
            RejectionReason.INVALID_FIELD,
            "traits.email",
        ),
        (
            {"userId": "u", "timestamp": "yesterday"},
            "identify",
            RejectionReason.INVALID_FIELD,
            "timestamp",
        ),
        (
            {"userId": "u", "timestamp": 1700000000},
            "identify",
            RejectionReason.INVALID_FIELD,
            "ISO 8601",
        ),
        ({"userId": "u"}, "track", RejectionReason.INVALID_FIELD, "event name"),
        (
            {"userId": "u", "type": "explode"},
            None,
            RejectionReason.INVALID_FIELD,
            "type must be one of",
        ),
        ({"userId": "u"}, "alias", RejectionReason.NO_IDENTIFIER, "previousId"),
        (
            {"userId": "u", "context": {"externalIds": [{"id": "1"}]}},
            "identify",
            RejectionReason.INVALID_FIELD,
            "externalIds[0].type",
        ),
        ("not an object", "identify", RejectionReason.INVALID_FIELD, "JSON object"),
    ],
)
def test_malformed_messages_are_refused_with_a_precise_detail(
    message: Any, kind: str | None, reason: RejectionReason, words: str
) -> None:
    error = refusal(message, kind)
    assert error.reason is reason
    assert words in error.detail


# Any JSON a client could send: the mapping either yields an event the schema accepts or
# refuses it with an InvalidEvent; never another exception (which would be an HTTP 500).
scalars = st.sampled_from([None, True, 0, -1, 2**70, 1.5, float("nan"), "", "x", "2026-01-01"])
json_values = (
    scalars
    | st.lists(scalars, max_size=2)
    | st.dictionaries(st.sampled_from(["id", "type", "x"]), scalars, max_size=2)
)
field_names = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "previousId",
        "groupId",
        "messageId",
        "event",
        "name",
        "timestamp",
        "traits",
        "context",
        "properties",
    ]
)
nested_names = st.sampled_from(
    [
        "email",
        "phone",
        "device",
        "id",
        "externalIds",
        "type",
        "traits",
        "order_id",
        "revenue",
        "currency",
    ]
)
nested = st.dictionaries(nested_names, json_values | st.lists(json_values, max_size=2), max_size=4)
segment_like = st.dictionaries(field_names, json_values | nested, max_size=8)


@settings(max_examples=300, deadline=None)
@given(message=segment_like, kind=st.sampled_from([None, *MESSAGE_TYPES]))
def test_any_json_message_maps_to_an_encodable_event_or_an_invalid_event(
    message: dict[str, Any], kind: str | None
) -> None:
    codec = AvroCodec(default_catalog())
    try:
        for item in batch_messages({"batch": [message], "context": {"ip": "1"}}):
            encode_channel_event(codec, channel_event_from_segment(item, WEB, RECEIVED, kind))
    except InvalidEvent:
        pass


def test_consent_category_preferences_become_consent_changes_per_purpose() -> None:
    event = mapped(
        {
            "type": "track",
            "event": "Consent Updated",
            "userId": "u-1",
            "messageId": "m-consent",
            "context": {"consent": {"categoryPreferences": {"Advertising": False, "email": True}}},
        }
    )
    assert event["consent"] == [
        {"purpose": "Advertising", "granted": False},
        {"purpose": "email", "granted": True},
    ]
    assert mapped({"type": "track", "event": "x", "userId": "u-1"})["consent"] is None
    bad = refusal(
        {
            "type": "track",
            "event": "x",
            "userId": "u-1",
            "context": {"consent": {"categoryPreferences": {"email": "yes"}}},
        }
    )
    assert "categoryPreferences" in bad.detail
