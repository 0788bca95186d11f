"""Email service (ESP) webhook events (delivered, open, click, unsubscribe...) as ChannelEvents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omnid.adapters.segment import WriteKeyTarget, flatten
from omnid.contracts.channel_event import Scalar, deterministic_event_id, new_channel_event
from omnid.errors import InvalidEvent, RejectionReason

EMAIL_MARKETING = "email_marketing"
LAST_UNIX_SECOND = 253_402_300_800  # 10000-01-01T00:00:00Z
# ESP event names that change marketing consent, and to what.
CONSENT_EVENTS: dict[str, bool] = {
    "unsubscribe": False,
    "group_unsubscribe": False,
    "spamreport": False,
    "group_resubscribe": True,
}
_FIELDS_USED = ("email", "event", "timestamp", "sg_event_id", "event_id")


def _invalid(detail: str) -> InvalidEvent:
    return InvalidEvent(RejectionReason.INVALID_FIELD, detail)


def channel_event_from_esp(
    item: Any, index: int, target: WriteKeyTarget, received_at: int
) -> dict[str, Any]:
    """One webhook item ({email, event, timestamp, sg_message_id|message_id, ...})."""
    where = f"[{index}]"
    if not isinstance(item, Mapping):
        raise _invalid(f"{where} must be a JSON object")
    email = item.get("email")
    if not isinstance(email, str) or not email:
        raise InvalidEvent(RejectionReason.NO_IDENTIFIER, f"{where}.email is missing")
    event = item.get("event")
    if not isinstance(event, str) or not event:
        raise _invalid(f"{where}.event must be a non-empty string")
    timestamp = item.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise _invalid(f"{where}.timestamp must be unix seconds (a number)")
    if not 0 <= timestamp < LAST_UNIX_SECOND:
        raise _invalid(f"{where}.timestamp must be unix seconds between 1970 and 9999")
    occurred_at = int(timestamp * 1000)
    message_id = item.get("sg_message_id") or item.get("message_id")
    if message_id is not None and not isinstance(message_id, str):
        raise _invalid(f"{where}.message_id must be a string")
    properties: dict[str, Scalar] = flatten(
        {key: value for key, value in item.items() if key not in _FIELDS_USED}
    )
    properties["esp_event"] = event
    explicit_id = item.get("sg_event_id") or item.get("event_id")
    event_id = (
        str(explicit_id)
        if explicit_id
        else deterministic_event_id(target.source, email, event, timestamp, message_id)
    )
    consent = [(EMAIL_MARKETING, CONSENT_EVENTS[event])] if event in CONSENT_EVENTS else None
    return new_channel_event(
        event_id=event_id,
        channel=target.channel,
        source=target.source,
        event_type=f"email_{event}",
        identifiers=[("email", email)],
        occurred_at=occurred_at,
        received_at=received_at,
        properties=properties,
        consent=consent,
    )
