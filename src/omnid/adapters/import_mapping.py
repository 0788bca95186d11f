"""The importer's mapping file: which column is which identifier, trait, property or order field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnid.adapters.segment import WriteKeyTarget, flatten
from omnid.config_files import load_yaml_model
from omnid.contracts.channel_event import Scalar, deterministic_event_id, new_channel_event
from omnid.contracts.money import parse_amount, parse_currency
from omnid.errors import InvalidEvent, RejectionReason

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f"})


class TimeFormat(StrEnum):
    ISO8601 = "iso8601"
    UNIX_SECONDS = "unix_seconds"
    UNIX_MILLIS = "unix_millis"


class TimeColumn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    format: str = Field(
        TimeFormat.ISO8601.value,
        description="iso8601, unix_seconds, unix_millis, or a strptime pattern",
    )
    timezone: str = Field("UTC", description="Zone of times written without one.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone


class PurchaseColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str
    amount: str
    currency: str | None = None
    default_currency: str | None = None


class ImportMapping(BaseModel):
    """One file's shape: columns are CSV header names or JSON Lines keys (dots reach nested)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    event_type: str | None = None
    event_id: str | None = Field(None, description="Column with a unique row id.")
    occurred_at: TimeColumn
    identifiers: dict[str, str] = Field(min_length=1)
    traits: dict[str, str] = {}
    properties: dict[str, str] = {}
    purchase: PurchaseColumns | None = None
    consent: dict[str, str] = Field({}, description="Purpose -> column holding yes/no.")

    @classmethod
    def load(cls, path: Path) -> ImportMapping:
        return load_yaml_model(path, cls, "import mapping")

    def columns(self) -> set[str]:
        named = [self.occurred_at.column, *self.identifiers.values(), *self.traits.values()]
        named += [*self.properties.values(), *self.consent.values()]
        if self.event_id:
            named.append(self.event_id)
        if self.purchase:
            named += [self.purchase.order_id, self.purchase.amount]
            if self.purchase.currency:
                named.append(self.purchase.currency)
        return set(named)


def _invalid(detail: str) -> InvalidEvent:
    return InvalidEvent(RejectionReason.INVALID_FIELD, detail)


def _cell(row: Mapping[str, Any], column: str) -> Any:
    if column in row:
        value = row[column]
    else:
        value = row
        for part in column.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    if isinstance(value, str):
        value = value.strip()
    return None if value == "" else value


def _text(row: Mapping[str, Any], column: str) -> str | None:
    value = _cell(row, column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _invalid(f"column {column} must be text, got {type(value).__name__}")
    return str(value)


def _occurred_at(row: Mapping[str, Any], spec: TimeColumn) -> int:
    value = _cell(row, spec.column)
    if value is None:
        raise _invalid(f"column {spec.column} (occurred_at) is empty")
    try:
        if spec.format in (TimeFormat.UNIX_SECONDS, TimeFormat.UNIX_MILLIS):
            number = float(value)
            return int(number * 1000 if spec.format == TimeFormat.UNIX_SECONDS else number)
        text = str(value)
        if spec.format == TimeFormat.ISO8601:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            moment = datetime.strptime(text, spec.format)
    except (ValueError, TypeError, OverflowError):
        raise _invalid(f"column {spec.column} value is not a {spec.format} time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(spec.timezone))
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _scalar_map(row: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Scalar]:
    values: dict[str, Scalar] = {}
    for name, column in columns.items():
        value = _cell(row, column)
        if isinstance(value, Mapping):
            values.update(flatten(value, f"{name}."))
        elif value is not None:
            values.update(flatten({name: value}))
    return values


def _purchase(row: Mapping[str, Any], spec: PurchaseColumns) -> dict[str, Any] | None:
    order_id = _text(row, spec.order_id)
    raw_amount = _cell(row, spec.amount)
    if order_id is None and raw_amount is None:
        return None
    if order_id is None:
        raise _invalid(f"column {spec.order_id} (order id) is empty but an amount is given")
    if raw_amount is None:
        raise _invalid(f"column {spec.amount} (amount) is empty but an order id is given")
    amount = parse_amount(raw_amount, f"column {spec.amount} (amount)")
    currency = (_text(row, spec.currency) if spec.currency else None) or spec.default_currency
    if not currency:
        raise _invalid("no currency: map a currency column or set default_currency")
    return {
        "order_id": order_id,
        "amount": amount,
        "currency": parse_currency(currency, f"column {spec.currency or 'default_currency'}"),
    }


def _consent(row: Mapping[str, Any], columns: Mapping[str, str]) -> list[tuple[str, bool]]:
    changes = []
    for purpose, column in columns.items():
        value = _cell(row, column)
        if value is None:
            continue
        word = str(value).lower()
        if isinstance(value, bool):
            changes.append((purpose, value))
        elif word in TRUE_WORDS or word in FALSE_WORDS:
            changes.append((purpose, word in TRUE_WORDS))
        else:
            raise _invalid(f"column {column} ({purpose} consent) must be yes/no, got {value!r}")
    return changes


def channel_event_from_row(
    row: Mapping[str, Any], mapping: ImportMapping, target: WriteKeyTarget, received_at: int
) -> dict[str, Any]:
    """One exported row as a ChannelEvent; InvalidEvent says which column is wrong."""
    identifiers = [
        (id_type, value)
        for id_type, column in mapping.identifiers.items()
        if (value := _text(row, column)) is not None
    ]
    if not identifiers:
        raise InvalidEvent(
            RejectionReason.NO_IDENTIFIER,
            f"no identifier: columns {', '.join(mapping.identifiers.values())} are all empty",
        )
    occurred_at = _occurred_at(row, mapping.occurred_at)
    purchase = _purchase(row, mapping.purchase) if mapping.purchase else None
    event_type = mapping.event_type or ("purchase" if purchase else f"{target.channel}_import")
    event_id = (_text(row, mapping.event_id) if mapping.event_id else None) or (
        deterministic_event_id(target.channel, target.source, dict(row))
    )
    return new_channel_event(
        event_id=event_id,
        channel=target.channel,
        source=target.source,
        event_type=event_type,
        identifiers=identifiers,
        occurred_at=occurred_at,
        received_at=received_at,
        traits=_scalar_map(row, mapping.traits),
        properties=_scalar_map(row, mapping.properties),
        purchase=purchase,
        consent=_consent(row, mapping.consent) or None,
    )
