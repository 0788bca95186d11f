"""Encoding, framing and decoding of the contracts, and the ChannelEvent checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from omnid.contracts import (
    CHANNEL_EVENT,
    AvroCodec,
    Framing,
    SchemaCatalog,
    decode_channel_event,
    default_catalog,
    encode_channel_event,
    new_channel_event,
)
from omnid.errors import InvalidEvent, RejectionReason

OCCURRED = 1_763_900_000_123


def crc64_avro(data: bytes) -> int:
    """The Avro specification's reference fingerprint, written out here to check fastavro's."""
    empty = 0xC15D213AA4D7A795
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def an_event(**overrides: Any) -> dict[str, Any]:
    event = new_channel_event(
        event_id="evt-1",
        channel="web",
        source="web-shop",
        event_type="identify",
        identifiers=[("email", "Ann@Example.com"), ("anonymous_id", "anon-1")],
        occurred_at=OCCURRED,
        received_at=OCCURRED + 5,
        traits={"name": "Ann", "age": 41, "score": 0.5, "vip": True, "nickname": None},
        properties={"url": "https://shop.example/"},
        purchase={"order_id": "o-1", "amount": 19.99, "currency": "EUR"},
        consent=[("email_marketing", False)],
    )
    event.update(overrides)
    return event


class FakeRegistry:
    """An in-memory schema registry: ids in registration order (stands in for Confluent's)."""

    def __init__(self) -> None:
        self.schemas: list[str] = []

    def register(self, subject: str, schema_json: str) -> int:
        if schema_json not in self.schemas:
            self.schemas.append(schema_json)
        return self.schemas.index(schema_json) + 1

    def schema_json(self, schema_id: int) -> str:
        return self.schemas[schema_id - 1]


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(default_catalog())


def test_single_object_header_is_c301_and_little_endian_crc64_of_canonical_form(
    codec: AvroCodec,
) -> None:
    payload = codec.encode(CHANNEL_EVENT, an_event())
    version = default_catalog().schema(CHANNEL_EVENT)
    expected = crc64_avro(version.canonical_form.encode()).to_bytes(8, "little")
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == expected


def test_channel_event_round_trips_every_field(codec: AvroCodec) -> None:
    event = an_event()
    decoded = decode_channel_event(codec, encode_channel_event(codec, event))
    assert decoded["occurred_at"] == datetime.fromtimestamp(OCCURRED / 1000, UTC)
    assert decoded["received_at"] == datetime.fromtimestamp((OCCURRED + 5) / 1000, UTC)
    for field in ("event_id", "channel", "source", "event_type", "identifiers", "properties"):
        assert decoded[field] == event[field]
    assert decoded["traits"] == event["traits"]
    assert type(decoded["traits"]["vip"]) is bool and type(decoded["traits"]["age"]) is int
    assert decoded["purchase"] == event["purchase"]
    assert decoded["consent"] == [{"purpose": "email_marketing", "granted": False}]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", RejectionReason.UNDECODABLE),
        (b'{"json": true}', RejectionReason.UNDECODABLE),
        (b"\xc3\x01\x00\x01", RejectionReason.UNDECODABLE),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", RejectionReason.UNDECODABLE),
        (b"\x00\x00\x00\x00\x07body", RejectionReason.UNDECODABLE),
    ],
    ids=["empty", "json", "truncated-header", "unknown-fingerprint", "confluent-no-registry"],
)
def test_undecodable_payloads_are_rejected_with_a_reason(
    codec: AvroCodec, payload: bytes, reason: RejectionReason
) -> None:
    with pytest.raises(InvalidEvent) as raised:
        codec.decode(payload)
    assert raised.value.reason is reason


def test_truncated_and_padded_bodies_are_undecodable(codec: AvroCodec) -> None:
    payload = codec.encode(CHANNEL_EVENT, an_event())
    for broken in (payload[:-3], payload + b"\x00\x01"):
        with pytest.raises(InvalidEvent) as raised:
            codec.decode(broken)
        assert raised.value.reason is RejectionReason.UNDECODABLE


def test_a_profile_update_on_the_events_topic_is_schema_invalid(codec: AvroCodec) -> None:
    change = {
        "change_id": "c1",
        "kind": "merged",
        "profile_id": "p1",
        "other_profile_id": "p2",
        "identifiers": [],
        "event_id": None,
        "reason": None,
        "at": OCCURRED,
    }
    payload = codec.encode("omnid.IdentityChange", change)
    with pytest.raises(InvalidEvent) as raised:
        decode_channel_event(codec, payload)
    assert raised.value.reason is RejectionReason.SCHEMA_INVALID
    assert "omnid.IdentityChange" in raised.value.detail


def test_encoding_a_record_the_schema_refuses_names_the_field(codec: AvroCodec) -> None:
    with pytest.raises(InvalidEvent) as raised:
        codec.encode(CHANNEL_EVENT, an_event(occurred_at="yesterday"))
    assert raised.value.reason is RejectionReason.SCHEMA_INVALID
    assert "occurred_at" in raised.value.detail


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"channel": "fax"}, RejectionReason.UNKNOWN_CHANNEL),
        ({"identifiers": []}, RejectionReason.NO_IDENTIFIER),
        ({"identifiers": [{"type": "email", "value": ""}]}, RejectionReason.NO_IDENTIFIER),
        ({"traits": {"essay": "x" * 40_000}}, RejectionReason.OVERSIZED),
        ({"properties": {"huge": 2**63}}, RejectionReason.SCHEMA_INVALID),
    ],
    ids=["unknown-channel", "no-identifiers", "empty-identifier", "oversized", "beyond-long"],
)
def test_channel_event_checks_beyond_the_schema(
    codec: AvroCodec, overrides: dict[str, Any], reason: RejectionReason
) -> None:
    with pytest.raises(InvalidEvent) as raised:
        encode_channel_event(codec, an_event(**overrides))
    assert raised.value.reason is reason


def test_decoder_refuses_an_oversized_payload_before_decoding(codec: AvroCodec) -> None:
    payload = encode_channel_event(codec, an_event(), max_bytes=1_000_000)
    with pytest.raises(InvalidEvent) as raised:
        decode_channel_event(codec, payload, max_bytes=len(payload) - 1)
    assert raised.value.reason is RejectionReason.OVERSIZED


def test_confluent_framing_round_trips_and_plain_decoders_accept_it() -> None:
    registry = FakeRegistry()
    confluent = AvroCodec(default_catalog(), registry)
    payload = confluent.encode(CHANNEL_EVENT, an_event())
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == 1
    decoded = confluent.decode(payload, expected=CHANNEL_EVENT)
    assert decoded.framing is Framing.CONFLUENT and decoded.record["event_id"] == "evt-1"
    # A decoder configured with the registry also reads single-object payloads.
    single = AvroCodec(default_catalog()).encode(CHANNEL_EVENT, an_event(event_id="evt-2"))
    assert confluent.decode(single).record["event_id"] == "evt-2"
    # The registered schema keeps its logical types, so times decode as datetimes.
    assert "timestamp-millis" in registry.schemas[0]


def test_data_written_with_a_released_schema_decodes_with_the_current_one(tmp_path: Path) -> None:
    """A producer still on the released schema keeps working after a compatible change."""
    schema_path = default_catalog().schema(CHANNEL_EVENT).path
    assert schema_path is not None
    released = json.loads(schema_path.read_text())
    current = json.loads(json.dumps(released))
    current["fields"].append(
        {"name": "store_id", "type": ["null", "string"], "default": None, "doc": "new"}
    )
    (tmp_path / "released" / "0.1.0").mkdir(parents=True)
    (tmp_path / "released" / "0.1.0" / "channel_event.avsc").write_text(json.dumps(released))
    (tmp_path / "channel_event.avsc").write_text(json.dumps(current))
    old_codec = AvroCodec(SchemaCatalog.load(tmp_path / "released"))
    new_codec = AvroCodec(SchemaCatalog.load(tmp_path))
    old_payload = old_codec.encode(CHANNEL_EVENT, an_event())
    decoded = new_codec.decode(old_payload, expected=CHANNEL_EVENT).record
    assert decoded["store_id"] is None and decoded["event_id"] == "evt-1"
