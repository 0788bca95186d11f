"""ESP webhook items become email ChannelEvents; unsubscribes withdraw marketing consent."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnid.adapters.email_webhook import channel_event_from_esp
from omnid.adapters.segment import WriteKeyTarget
from omnid.contracts import AvroCodec, Channel, default_catalog, encode_channel_event
from omnid.errors import InvalidEvent, RejectionReason

ESP = WriteKeyTarget(Channel.EMAIL, "esp")


def test_unsubscribe_withdraws_email_marketing_consent() -> None:
    item = {
        "email": "Ann@Example.com",
        "event": "unsubscribe",
        "timestamp": 1700000000,
        "sg_message_id": "m1",
    }
    event = channel_event_from_esp(item, 0, ESP, 1)
    assert event["event_type"] == "email_unsubscribe"
    assert event["consent"] == [{"purpose": "email_marketing", "granted": False}]
    assert event["identifiers"] == [{"type": "email", "value": "Ann@Example.com"}]
    assert event["occurred_at"] == 1_700_000_000_000
    assert event["properties"]["sg_message_id"] == "m1"


def test_click_carries_no_consent_and_keeps_the_url() -> None:
    item = {
        "email": "a@b.example",
        "event": "click",
        "timestamp": 1700000000.5,
        "url": "https://x",
        "message_id": "m2",
    }
    event = channel_event_from_esp(item, 0, ESP, 1)
    assert event["consent"] is None
    assert event["properties"]["url"] == "https://x"
    assert event["occurred_at"] == 1_700_000_000_500


def test_same_item_twice_has_the_same_event_id_and_esp_ids_win() -> None:
    item = {"email": "a@b.example", "event": "open", "timestamp": 1700000000}
    assert (
        channel_event_from_esp(item, 0, ESP, 1)["event_id"]
        == channel_event_from_esp(item, 3, ESP, 2)["event_id"]
    )
    assert channel_event_from_esp({**item, "sg_event_id": "E"}, 0, ESP, 1)["event_id"] == "E"


@pytest.mark.parametrize(
    ("item", "reason", "words"),
    [
        ({"event": "open", "timestamp": 1}, RejectionReason.NO_IDENTIFIER, "[4].email"),
        ({"email": "a@b", "timestamp": 1}, RejectionReason.INVALID_FIELD, "[4].event"),
        (
            {"email": "a@b", "event": "open", "timestamp": "1 May"},
            RejectionReason.INVALID_FIELD,
            "unix seconds",
        ),
    ],
)
def test_bad_items_are_refused_naming_their_index(
    item: dict, reason: RejectionReason, words: str
) -> None:
    with pytest.raises(InvalidEvent) as raised:
        channel_event_from_esp(item, 4, ESP, 1)
    assert raised.value.reason is reason and words in raised.value.detail


scalars = st.sampled_from(
    [None, True, 0, -5, 1.7e9, 1e300, float("nan"), 2**70, "", "open", "a@b.c"]
)
items = st.dictionaries(
    st.sampled_from(
        ["email", "event", "timestamp", "sg_message_id", "message_id", "sg_event_id", "url"]
    ),
    scalars | st.lists(scalars, max_size=2) | st.dictionaries(st.just("k"), scalars, max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(item=items | scalars)
def test_any_webhook_item_maps_to_an_encodable_event_or_an_invalid_event(item: object) -> None:
    codec = AvroCodec(default_catalog())
    with contextlib.suppress(InvalidEvent):
        encode_channel_event(codec, channel_event_from_esp(item, 0, ESP, 1))
