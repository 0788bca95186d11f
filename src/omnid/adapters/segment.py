"""Segment Tracking API messages (identify, track, page, screen, alias, group) as ChannelEvents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnid.contracts.channel_event import (
    Channel,
    Scalar,
    deterministic_event_id,
    epoch_millis,
    new_channel_event,
)
from omnid.contracts.money import parse_amount, parse_currency
from omnid.errors import InvalidEvent, RejectionReason

MESSAGE_TYPES = ("identify", "track", "page", "screen", "alias", "group")
# Segment's e-commerce spec names the purchase event; its properties carry the order.
ORDER_COMPLETED = "Order Completed"
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class WriteKeyTarget:
    """Where a write key's events go: its channel and the source named in each event."""

    channel: Channel
    source: str


def _invalid(detail: str) -> InvalidEvent:
    return InvalidEvent(RejectionReason.INVALID_FIELD, detail)


def _optional_id(message: Mapping[str, Any], field: str, label: str | None = None) -> str | None:
    """Ids are JSON strings, as the Tracking API documents them (the SDKs send numbers as text):
    a number is refused rather than guessed at, since 42 and 42.0 would become two people."""
    value = message.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        shown = f'; send it as text: "{value}"' if numeric else ""
        raise _invalid(f"{label or field} must be a string, got {type(value).__name__}{shown}")
    return value


def _object(message: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = message.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _invalid(f"{field} must be an object, got {type(value).__name__}")
    return value


def _is_long(value: int) -> bool:
    return -(2**63) <= value < 2**63


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Nested objects become dotted keys; lists are kept as JSON text (the maps hold scalars)."""
    flat: dict[str, Scalar] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, int) and not isinstance(value, bool) and not _is_long(value):
            flat[name] = str(value)  # beyond Avro's long: keep every digit as text
        elif value is None or isinstance(value, str | bool | int | float):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def parse_timestamp(value: Any, field: str) -> int:
    """ISO 8601 with a zone (a trailing Z included); naive times are read as UTC like Segment."""
    if not isinstance(value, str):
        raise _invalid(f"{field} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _invalid(f"{field} {value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return epoch_millis(moment)


def _occurred_at(message: Mapping[str, Any], received_at: int) -> int:
    for field in ("timestamp", "originalTimestamp"):
        if message.get(field) is not None:
            return parse_timestamp(message[field], field)
    return received_at


def _identifiers(
    message: Mapping[str, Any], traits: Mapping[str, Any], context: Mapping[str, Any]
) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for field, id_type in (("userId", "user_id"), ("anonymousId", "anonymous_id")):
        value = _optional_id(message, field)
        if value is not None:
            pairs.append((id_type, value))
    context_traits = _object(context, "traits")
    for id_type in ("email", "phone"):
        value = _optional_id(traits, id_type, f"traits.{id_type}") or _optional_id(
            context_traits, id_type, f"context.traits.{id_type}"
        )
        if value is not None:
            pairs.append((id_type, value))
    device = _object(context, "device")
    device_id = _optional_id(device, "id", "context.device.id")
    if device_id is not None:
        pairs.append(("device_id", device_id))
    external_ids = context.get("externalIds")
    if external_ids is not None:
        if not isinstance(external_ids, list):
            raise _invalid("context.externalIds must be an array")
        for index, external in enumerate(external_ids):
            where = f"context.externalIds[{index}]"
            if not isinstance(external, Mapping):
                raise _invalid(f"{where} must be an object with id and type")
            id_type = external.get("type")
            if not isinstance(id_type, str) or not id_type:
                raise _invalid(f"{where}.type must be a non-empty string")
            value = _optional_id(external, "id", f"{where}.id")
            if value is None:
                raise _invalid(f"{where}.id is missing")
            pairs.append((id_type, value))
    return pairs


def _purchase(properties: Mapping[str, Any]) -> dict[str, Any]:
    order_id = _optional_id(properties, "order_id", "properties.order_id")
    if order_id is None:
        raise _invalid(f"an {ORDER_COMPLETED} event needs properties.order_id")
    field = next((f for f in ("revenue", "total", "value") if properties.get(f) is not None), None)
    if field is None:
        raise _invalid(f"an {ORDER_COMPLETED} event needs properties.revenue or total")
    return {
        "order_id": order_id,
        "amount": parse_amount(properties[field], f"properties.{field}"),
        "currency": parse_currency(
            properties.get("currency") or DEFAULT_CURRENCY, "properties.currency"
        ),
    }


def _consent(context: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """Segment's consent convention: `context.consent.categoryPreferences`, purpose -> bool."""
    preferences = _object(_object(context, "consent"), "categoryPreferences")
    changes = []
    for purpose, granted in sorted(preferences.items()):
        if not isinstance(granted, bool) or not purpose.strip():
            raise _invalid("context.consent.categoryPreferences must map purposes to true/false")
        changes.append((purpose.strip(), granted))
    return changes


def batch_messages(body: Any) -> list[Any]:
    """The messages of a /v1/batch body, each with the batch-level `context` as its defaults."""
    messages = body.get("batch") if isinstance(body, Mapping) else None
    if not isinstance(messages, list):
        raise _invalid("batch must be an array")
    shared = body.get("context")
    if not isinstance(shared, Mapping):
        return messages
    merged = []
    for message in messages:
        own = message.get("context") if isinstance(message, Mapping) else None
        if isinstance(message, Mapping) and (own is None or isinstance(own, Mapping)):
            message = {**message, "context": {**shared, **(own or {})}}
        merged.append(message)
    return merged


def channel_event_from_segment(
    message: Any, target: WriteKeyTarget, received_at: int, message_type: str | None = None
) -> dict[str, Any]:
    """One Segment message as a ChannelEvent record; InvalidEvent names the offending field.

    `message_type` is fixed by the endpoint (/v1/track); batch messages name their own `type`.
    """
    if not isinstance(message, Mapping):
        raise _invalid(f"a message must be a JSON object, got {type(message).__name__}")
    kind = message_type or message.get("type")
    if kind not in MESSAGE_TYPES:
        raise _invalid(f"type must be one of {', '.join(MESSAGE_TYPES)}, got {kind!r}")
    context = _object(message, "context")
    properties_in = _object(message, "properties")
    traits_in = _object(message, "traits")
    traits = {**flatten(_object(context, "traits")), **flatten(traits_in)}
    properties: dict[str, Scalar] = {}
    identifiers_traits: Mapping[str, Any] = traits_in
    purchase = None
    event_type: str = kind
    if kind == "group":
        # Group traits describe the company, not the person: keep them off the profile.
        group_id = _optional_id(message, "groupId")
        if group_id is None:
            raise _invalid("group needs a groupId")
        properties = {"group_id": group_id, **flatten(traits_in, "group.")}
        traits = flatten(_object(context, "traits"))
        identifiers_traits = {}
    else:
        properties = flatten(properties_in)
    if kind == "track":
        event_name = message.get("event")
        if not isinstance(event_name, str) or not event_name:
            raise _invalid("track needs an event name (a non-empty string)")
        properties["event"] = event_name
        if event_name == ORDER_COMPLETED:
            event_type = "purchase"
            purchase = _purchase(properties_in)
    if kind in ("page", "screen"):
        for field in ("name", "category"):
            value = message.get(field)
            if value is not None:
                if not isinstance(value, str):
                    raise _invalid(f"{field} must be a string")
                properties[field] = value
    identifiers = _identifiers(message, identifiers_traits, context)
    if kind == "alias":
        previous_id = _optional_id(message, "previousId")
        if previous_id is None or _optional_id(message, "userId") is None:
            raise InvalidEvent(
                RejectionReason.NO_IDENTIFIER, "alias needs both userId and previousId"
            )
        # previousId is nearly always the pre-login anonymousId; as a user_id it would fight
        # the one-user-id-per-profile limit and refuse the very merge alias asks for.
        identifiers.append(("anonymous_id", previous_id))
    if not identifiers:
        raise InvalidEvent(
            RejectionReason.NO_IDENTIFIER,
            "missing ids: a message needs userId or anonymousId "
            "(or traits.email, traits.phone, context.device.id, context.externalIds)",
        )
    occurred_at = _occurred_at(message, received_at)
    event_id = _optional_id(message, "messageId") or deterministic_event_id(
        target.source, kind, message
    )
    return new_channel_event(
        event_id=event_id,
        channel=target.channel,
        source=target.source,
        event_type=event_type,
        identifiers=identifiers,
        occurred_at=occurred_at,
        received_at=received_at,
        traits=traits,
        properties=properties,
        purchase=purchase,
        consent=_consent(context) or None,
    )
