"""Fuzzing the edges with hypothesis: whatever bytes, JSON or rows arrive, the Avro decoder and
framing, the Segment mapping and the importer answer with a value or an InvalidEvent carrying a
reason; never another exception (which would be a 500, a crashed worker, or a lost row)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from omnid.adapters.import_mapping import ImportMapping, channel_event_from_row
from omnid.adapters.json_body import UnusableBody, parse_json_body
from omnid.adapters.segment import WriteKeyTarget, batch_messages, channel_event_from_segment
from omnid.config import PROJECT_ROOT
from omnid.contracts import CHANNEL_EVENT, AvroCodec, Channel, decode_channel_event
from omnid.contracts.channel_event import encode_channel_event, new_channel_event
from omnid.contracts.framing import read_frame
from omnid.errors import InvalidEvent, RejectionReason

CODEC = AvroCodec.from_settings()
WEB = WriteKeyTarget(Channel.WEB, "fuzz")
POS = WriteKeyTarget(Channel.POS, "store-tills")
POS_MAPPING = ImportMapping.load(PROJECT_ROOT / "samples" / "pos-mapping.yaml")
VALID_EVENT = encode_channel_event(
    CODEC,
    new_channel_event(
        event_id="e1", channel="web", source="fuzz", event_type="purchase",
        identifiers=[("user_id", "u1"), ("email", "ann@shop.io")], occurred_at=1, received_at=2,
        traits={"name": "Ann", "age": 40, "vip": True, "score": 1.5},
        purchase={"order_id": "o1", "amount": "19.99", "currency": "EUR"},
    ),
)  # fmt: skip

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
SEGMENT_KEYS = st.sampled_from(
    ["type", "userId", "anonymousId", "previousId", "groupId", "messageId", "event", "name",
     "timestamp", "traits", "properties", "context", "email", "phone", "revenue", "total",
     "order_id", "currency", "device", "id", "externalIds"]
)  # fmt: skip
# Messages shaped like Segment's (its keys, any values), so the mapping gets past the first check.
SEGMENT_LIKE = st.recursive(
    SCALARS | st.just("Order Completed") | st.just("identify") | st.just("2026-01-01T00:00:00Z"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SEGMENT_KEYS, inner, max_size=6),
    max_leaves=30,
)


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_an_event_or_an_invalid_event(payload: bytes) -> None:
    try:
        decode_channel_event(CODEC, payload)
    except InvalidEvent as refused:
        assert refused.reason in RejectionReason


@given(st.data())
def test_a_valid_event_with_bytes_flipped_cut_or_appended_never_crashes_the_decoder(
    data: st.DataObject,
) -> None:
    payload = bytearray(VALID_EVENT)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    mutated = bytes(payload[:cut]) + data.draw(st.binary(max_size=8))
    try:
        record = decode_channel_event(CODEC, mutated)
    except InvalidEvent as refused:
        assert refused.reason in RejectionReason
        return
    assert record["identifiers"]  # what decodes passed every check of the contract


@given(st.binary(max_size=40))
def test_framing_reads_a_header_or_refuses_it(payload: bytes) -> None:
    try:
        frame = read_frame(payload)
    except InvalidEvent as refused:
        assert refused.reason is RejectionReason.UNDECODABLE
        return
    assert 0 < frame.body_offset <= len(payload)


@given(SEGMENT_LIKE, st.sampled_from([None, "identify", "track", "page", "alias", "group"]))
def test_any_segment_message_maps_encodes_or_is_refused_with_a_reason(
    message: Any, kind: str | None
) -> None:
    try:
        record = channel_event_from_segment(message, WEB, 1, kind)
        encode_channel_event(CODEC, record)
    except InvalidEvent as refused:
        assert refused.reason in RejectionReason


@given(JSON)
def test_any_batch_body_splits_or_is_refused(body: Any) -> None:
    try:
        for message in batch_messages(body):
            channel_event_from_segment(message, WEB, 1)
    except InvalidEvent as refused:
        assert refused.reason in RejectionReason


@given(JSON)
def test_collector_json_round_trips_through_the_strict_parser(value: Any) -> None:
    raw = json.dumps(value).encode()
    try:
        assert parse_json_body(raw) == value
    except UnusableBody as refused:  # NaN, Infinity (json.dumps writes them) or too deep
        assert "NaN" in raw.decode() or "Infinity" in raw.decode() or "deep" in refused.detail


@given(st.dictionaries(st.sampled_from(sorted(POS_MAPPING.columns())), st.text(max_size=30)))
def test_any_importer_row_is_an_event_or_a_rejected_row_with_a_reason(row: dict[str, str]) -> None:
    try:
        record = channel_event_from_row(row, POS_MAPPING, POS, 1)
        encode_channel_event(CODEC, record)
    except InvalidEvent as refused:
        assert refused.reason in RejectionReason


def test_the_fuzzed_valid_event_is_valid() -> None:
    assert decode_channel_event(CODEC, VALID_EVENT)["purchase"]["order_id"] == "o1"
    assert CHANNEL_EVENT == "omnid.ChannelEvent"
