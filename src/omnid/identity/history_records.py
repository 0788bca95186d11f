"""The stored form of a profile's event history (table `history`): compact, because it is the
largest thing a profile keeps and it is rewritten whenever the profile applies an event.

`01` then a MessagePack array: the residue (a version-1 graph record, or nil) followed by one
array per event, `[event_id, channel, source, event_type, occurred_at, received_at, identifier
keys, traits, purchase, consent]` with purchase `[order_id, amount, currency]` and consent
`[[purpose, granted], ...]` (nil when absent). Positional arrays instead of the graph codec's
named maps save the field names, repeated in every event: measured by
`python bench/history_bytes.py` (README "Split and explain").
"""

from __future__ import annotations

from typing import Any

import msgspec

from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity import records
from omnid.identity.model import ConsentChange, Event, Identifier, Purchase
from omnid.identity.state import EventHistory, ProfileState

VERSION = 1
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


def _event_row(event: Event) -> list[Any]:
    purchase = event.purchase
    return [
        event.event_id,
        event.channel,
        event.source,
        event.event_type,
        event.occurred_at,
        event.received_at,
        [i.key for i in event.identifiers],
        dict(event.traits) or None,
        [purchase.order_id, purchase.amount, purchase.currency] if purchase else None,
        [[c.purpose, c.granted] for c in event.consent] if event.consent is not None else None,
    ]


def _event_of(row: list[Any]) -> Event:
    event_id, channel, source, event_type, occurred_at, received_at, keys = row[:7]
    traits, purchase, consent = row[7:10]
    identifiers = []
    for key in keys:
        identifier_type, _, value = key.partition(":")
        identifiers.append(Identifier(identifier_type, value))
    return Event(
        event_id,
        channel,
        source,
        event_type,
        occurred_at,
        received_at,
        tuple(identifiers),
        traits or {},
        {},
        Purchase(purchase[0], float(purchase[1]), purchase[2]) if purchase else None,
        tuple(ConsentChange(p, g) for p, g in consent) if consent is not None else None,
    )


def encode_history(history: EventHistory) -> bytes:
    residue = records.encode(history.residue) if history.residue is not None else None
    rows = [_event_row(event) for event in history.events.values()]
    return bytes((VERSION,)) + _ENCODER.encode([residue, *rows])


def decode_history(payload: bytes) -> EventHistory:
    try:
        if not payload or payload[0] != VERSION:
            raise ValueError("unknown history record version")
        residue_bytes, *rows = _DECODER.decode(payload[1:])
        residue = records.decode(residue_bytes) if residue_bytes is not None else None
        if residue is not None and not isinstance(residue, ProfileState):
            raise TypeError("history residue is not a profile")
        events = {row[0]: _event_of(row) for row in rows}
    except (msgspec.DecodeError, TypeError, ValueError, IndexError) as error:
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"bad history record: {error}") from None
    return EventHistory(events, residue)
