"""The ChannelEvent contract in code: channels, topic names, building and checking events."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from omnid.contracts.codec import AvroCodec
from omnid.contracts.money import check_purchase_amount, purchase_record
from omnid.errors import InvalidEvent, RejectionReason
from omnid.kafka.topology import prefixed_name

CHANNEL_EVENT = "omnid.ChannelEvent"
EVENTS_TOPIC_PREFIX = "omnid.events."
# Segment's per-message limit; an encoded event above it is refused as OVERSIZED everywhere.
DEFAULT_MAX_EVENT_BYTES = 32 * 1024

Scalar = str | int | float | bool | None


class Channel(StrEnum):
    """The channels omnid knows; each has its own events topic."""

    WEB = "web"
    APP = "app"
    POS = "pos"
    EMAIL = "email"
    CRM = "crm"
    CALL_CENTRE = "call_centre"
    LOYALTY = "loyalty"


def events_topic(channel: Channel | str, topic_prefix: str = "") -> str:
    """`omnid.events.<channel>`, under `topic_prefix` (Settings.topic_prefix) when one is set."""
    return prefixed_name(topic_prefix, f"{EVENTS_TOPIC_PREFIX}{Channel(channel).value}")


def epoch_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidEvent(RejectionReason.INVALID_FIELD, "timestamp has no time zone")
    return int(moment.timestamp() * 1000)


def now_millis() -> int:
    return epoch_millis(datetime.now(UTC))


def first_identifier_key(record: Mapping[str, Any]) -> str | None:
    """The raw `type:value` of the event's first identifier, or None when it has none: the
    events-topic key streams/topics.yaml describes (not normalised: only placement uses it)."""
    identifiers = record.get("identifiers") or []
    return f"{identifiers[0]['type']}:{identifiers[0]['value']}" if identifiers else None


def deterministic_event_id(*parts: Any) -> str:
    """An event id for input that carries none: the same input always gets the same id,
    so a retried request or a re-imported file is counted once."""
    digest = hashlib.sha256(
        json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    return f"sha256:{digest[:32]}"


def new_channel_event(
    *,
    event_id: str,
    channel: Channel | str,
    source: str,
    event_type: str,
    identifiers: Iterable[tuple[str, str]],
    occurred_at: int,
    received_at: int | None = None,
    traits: Mapping[str, Scalar] | None = None,
    properties: Mapping[str, Scalar] | None = None,
    purchase: Mapping[str, Any] | None = None,
    consent: Iterable[tuple[str, bool]] | None = None,
) -> dict[str, Any]:
    """A ChannelEvent record (times as epoch milliseconds) in the exact Avro shape.

    `purchase` is `{order_id, amount, currency}`; the amount (number, Decimal or decimal text)
    is checked and written both exactly and as a double (omnid.contracts.money)."""
    consent_changes = [{"purpose": p, "granted": g} for p, g in consent] if consent else None
    return {
        "event_id": event_id,
        "channel": str(channel),
        "source": source,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "received_at": now_millis() if received_at is None else received_at,
        "identifiers": [{"type": t, "value": v} for t, v in identifiers],
        "traits": dict(traits or {}),
        "properties": dict(properties or {}),
        "purchase": purchase_record(purchase) if purchase is not None else None,
        "consent": consent_changes or None,
    }


_NUMBERS = frozenset({int, float})
_CHANNELS = frozenset(c.value for c in Channel)
_MIN_LONG, _MAX_LONG = -(2**63), 2**63 - 1


def _check_number(name: str, value: Any) -> None:
    # fastavro writes any Python int as a varint; other readers refuse more than 64 bits.
    if isinstance(value, int) and not _MIN_LONG <= value <= _MAX_LONG:
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"{name} does not fit a 64-bit long")
    # NaN and infinities are valid Avro doubles, but not JSON, and NaN never compares equal.
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(
            RejectionReason.INVALID_FIELD, f"{name} must be a finite number, got {value}"
        )


def check_channel_event(record: Mapping[str, Any]) -> None:
    """What the schema cannot say: a known channel, at least one non-empty identifier, integers
    that fit Avro's long, finite doubles, and an order amount within the money bounds."""
    channel = record.get("channel")
    if not (isinstance(channel, str) and channel in _CHANNELS):
        known = ", ".join(c.value for c in Channel)
        raise InvalidEvent(
            RejectionReason.UNKNOWN_CHANNEL, f"channel {channel!r} is not one of {known}"
        )
    for field in ("occurred_at", "received_at"):
        _check_number(field, record.get(field))
    for field in ("traits", "properties"):
        for name, value in (record.get(field) or {}).items():
            if type(value) in _NUMBERS:  # most values are text: one lookup, no name built
                _check_number(f"{field}.{name}", value)
    purchase = record.get("purchase")
    if isinstance(purchase, Mapping):
        check_purchase_amount(purchase)
    identifiers = record.get("identifiers") or []
    if not any((type(i) is dict or isinstance(i, Mapping)) and i.get("value") for i in identifiers):
        raise InvalidEvent(RejectionReason.NO_IDENTIFIER, "the event carries no identifier")


def encode_channel_event(
    codec: AvroCodec, record: Mapping[str, Any], max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> bytes:
    """Check, encode and size-check one event: what every adapter puts on Kafka."""
    check_channel_event(record)
    payload = codec.encode(CHANNEL_EVENT, record)
    if len(payload) > max_bytes:
        raise InvalidEvent(
            RejectionReason.OVERSIZED,
            f"encoded event is {len(payload)} bytes; the limit is {max_bytes}",
        )
    return payload


def decode_channel_event(
    codec: AvroCodec, payload: bytes, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> dict[str, Any]:
    """Decode and check one event from Kafka; every refusal is an InvalidEvent with a reason."""
    if len(payload) > max_bytes:
        raise InvalidEvent(
            RejectionReason.OVERSIZED, f"payload is {len(payload)} bytes; the limit is {max_bytes}"
        )
    record = codec.decode(payload, expected=CHANNEL_EVENT).record
    check_channel_event(record)
    return record
