"""Plain data the identity core works on: identifiers and channel events (times in epoch ms)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NewType

from omnid.errors import InvalidEvent, RejectionReason

Scalar = str | int | float | bool | None

# An event id as the idempotence windows remember it: 64 bits of its BLAKE2b hash (9 bytes in a
# record instead of a 36-character UUID). Two of a profile's 10,000 remembered events collide
# with odds of about 3e-12, and only a collision could make a new event look seen before.
EventDigest = NewType("EventDigest", int)


# An event's digest is asked for at every step of its journey (the anchor's window, each Apply,
# passed_on): remembered for the events in flight instead of hashed again each time.
@functools.lru_cache(maxsize=1 << 14)
def event_digest(event_id: str) -> EventDigest:
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return EventDigest(int.from_bytes(digest, "big"))


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """One identifier as it appears on the wire: type and (normalised) value, and its graph key
    `"<type>:<value>"` (identity commands are keyed by it). The key is made once, when the
    identifier is: the core asks for it some twenty times per event."""

    type: str
    value: str
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.type}:{self.value}")


@dataclass(frozen=True, slots=True)
class Purchase:
    order_id: str
    amount: float
    currency: str


@dataclass(frozen=True, slots=True)
class ConsentChange:
    purpose: str
    granted: bool


@dataclass(frozen=True, slots=True)
class Event:
    """A ChannelEvent. `identifiers` are raw until intake normalises and sorts them."""

    event_id: str
    channel: str
    source: str
    event_type: str
    occurred_at: int
    received_at: int
    identifiers: tuple[Identifier, ...]
    traits: Mapping[str, Scalar] = field(default_factory=dict)
    properties: Mapping[str, Scalar] = field(default_factory=dict)
    purchase: Purchase | None = None
    consent: tuple[ConsentChange, ...] | None = None

    @property
    def event_time(self) -> int:
        """When it happened, clamped to when omnid received it: a fast client clock cannot
        make an event look newer than the broker saw it."""
        return min(self.occurred_at, self.received_at)

    def for_graph(self, identifiers: tuple[Identifier, ...]) -> Event:
        """The event as the graph's commands carry it: with `identifiers` (normalised ones, or
        fewer) and without `properties`, which nothing in the core reads (survivorship,
        evidence and the history ignore them), so no command or history row holds them. The
        constructor, not dataclasses.replace: replace introspects the fields on every call."""
        return Event(
            self.event_id,
            self.channel,
            self.source,
            self.event_type,
            self.occurred_at,
            self.received_at,
            identifiers,
            self.traits,
            {},
            self.purchase,
            self.consent,
        )

    @property
    def digest(self) -> EventDigest:
        """The event id as the idempotence windows hold it."""
        return event_digest(self.event_id)


def epoch_millis(value: object, field_name: str) -> int:
    """timestamp-millis as fastavro decodes it (aware datetime) or as a plain int."""
    if isinstance(value, bool):
        raise InvalidEvent(RejectionReason.INVALID_FIELD, f"{field_name} is not a timestamp")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return round(moment.timestamp() * 1000)
    raise InvalidEvent(RejectionReason.INVALID_FIELD, f"{field_name} is not a timestamp")


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"{name} must be a string")
    return value


_SCALARS = (str, int, float, bool, type(None))  # Scalar's types; a tuple is checked fastest


def _scalars(value: object, name: str) -> dict[str, Scalar]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"{name} must be a map")
    result: dict[str, Scalar] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, _SCALARS):
            raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"{name} holds a non-scalar value")
        result[key] = item
    return result


def event_from_record(record: Mapping[str, Any]) -> Event:
    """Build an Event from a ChannelEvent dict; raises InvalidEvent when the shape is wrong."""
    raw_identifiers = record.get("identifiers")
    if not isinstance(raw_identifiers, list | tuple):
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, "identifiers must be an array")
    identifiers = []
    for item in raw_identifiers:
        if type(item) is not dict and not isinstance(item, Mapping):  # decoded Avro: dicts
            raise InvalidEvent(RejectionReason.SCHEMA_INVALID, "identifier must be a record")
        identifiers.append(Identifier(_text(item, "type"), _text(item, "value")))
    purchase = None
    raw_purchase = record.get("purchase")
    if raw_purchase is not None:
        if not isinstance(raw_purchase, Mapping):
            raise InvalidEvent(RejectionReason.SCHEMA_INVALID, "purchase must be a record")
        # amount_decimal is exact (writers since 0.2.0); amount is what 0.1.0 writers sent.
        exact = raw_purchase.get("amount_decimal")
        amount = raw_purchase.get("amount") if exact is None else exact
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float | Decimal)
            or not math.isfinite(amount)
        ):
            raise InvalidEvent(
                RejectionReason.INVALID_FIELD, "purchase.amount must be a finite number"
            )
        purchase = Purchase(
            _text(raw_purchase, "order_id"), float(amount), _text(raw_purchase, "currency")
        )
    consent = None
    raw_consent = record.get("consent")
    if raw_consent is not None:
        if not isinstance(raw_consent, list | tuple):
            raise InvalidEvent(RejectionReason.SCHEMA_INVALID, "consent must be an array")
        changes = []
        for item in raw_consent:
            granted = item.get("granted") if isinstance(item, Mapping) else None
            if not isinstance(item, Mapping) or not isinstance(granted, bool):
                raise InvalidEvent(RejectionReason.SCHEMA_INVALID, "consent change is malformed")
            changes.append(ConsentChange(_text(item, "purpose"), granted))
        consent = tuple(changes)
    return Event(
        event_id=_text(record, "event_id"),
        channel=_text(record, "channel"),
        source=_text(record, "source"),
        event_type=_text(record, "event_type"),
        occurred_at=epoch_millis(record.get("occurred_at"), "occurred_at"),
        received_at=epoch_millis(record.get("received_at"), "received_at"),
        identifiers=tuple(identifiers),
        traits=_scalars(record.get("traits"), "traits"),
        properties=_scalars(record.get("properties"), "properties"),
        purchase=purchase,
        consent=consent,
    )
