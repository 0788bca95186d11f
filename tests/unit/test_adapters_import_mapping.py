"""Exported rows become ChannelEvents through the mapping file; bad cells say which column."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from omnid.adapters.import_mapping import ImportMapping, channel_event_from_row
from omnid.adapters.segment import WriteKeyTarget
from omnid.config import PROJECT_ROOT
from omnid.contracts import Channel
from omnid.errors import ConfigError, InvalidEvent, RejectionReason

POS = WriteKeyTarget(Channel.POS, "store-tills")
SAMPLE_MAPPING = ImportMapping.load(PROJECT_ROOT / "samples" / "pos-mapping.yaml")
ROW = {
    "receipt_id": "R-1",
    "sold_at": "01/07/2026 09:15",
    "store": "LDN-01",
    "customer_no": "C-501",
    "loyalty_card": "",
    "email": "ann@example.com",
    "phone": "",
    "first_name": "Ann",
    "last_name": "",
    "total": "42.50",
    "currency": "",
}


def test_sample_pos_row_maps_identifiers_purchase_and_local_time() -> None:
    event = channel_event_from_row(ROW, SAMPLE_MAPPING, POS, 1)
    assert event["identifiers"] == [
        {"type": "pos_customer_id", "value": "C-501"},
        {"type": "email", "value": "ann@example.com"},
    ]
    assert event["purchase"] == {
        "order_id": "R-1",
        "amount": 42.5,
        "currency": "GBP",
        "amount_decimal": Decimal("42.5000"),
    }
    assert event["event_id"] == "R-1" and event["event_type"] == "purchase"
    # 09:15 in London in July is 08:15 UTC.
    assert event["occurred_at"] == int(datetime(2026, 7, 1, 8, 15, tzinfo=UTC).timestamp() * 1000)
    assert event["traits"] == {"first_name": "Ann"}
    assert event["properties"] == {"store_id": "LDN-01"}


@pytest.mark.parametrize(
    ("changes", "reason", "words"),
    [
        ({"customer_no": "", "email": ""}, RejectionReason.NO_IDENTIFIER, "no identifier"),
        ({"sold_at": "yesterday"}, RejectionReason.INVALID_FIELD, "sold_at"),
        ({"total": "forty"}, RejectionReason.INVALID_FIELD, "total"),
    ],
)
def test_bad_rows_are_refused_naming_the_column(
    changes: dict[str, str], reason: RejectionReason, words: str
) -> None:
    with pytest.raises(InvalidEvent) as raised:
        channel_event_from_row({**ROW, **changes}, SAMPLE_MAPPING, POS, 1)
    assert raised.value.reason is reason and words in raised.value.detail


def test_nested_json_keys_and_yes_no_consent() -> None:
    mapping = ImportMapping.load(PROJECT_ROOT / "samples" / "crm-mapping.yaml")
    row = {
        "id": "CRM-1",
        "loyalty": {"card": "LC-1"},
        "address": {"city": "Leeds"},
        "vip": True,
        "marketing_opt_in": "no",
        "updated_at": "2026-11-02T09:30:00+01:00",
    }
    event = channel_event_from_row(row, mapping, WriteKeyTarget(Channel.CRM, "crm"), 1)
    assert {"type": "loyalty_id", "value": "LC-1"} in event["identifiers"]
    assert event["traits"] == {"city": "Leeds", "vip": True}
    assert event["consent"] == [{"purpose": "email_marketing", "granted": False}]
    assert event["occurred_at"] == int(datetime(2026, 11, 2, 8, 30, tzinfo=UTC).timestamp() * 1000)


def test_mapping_without_identifiers_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("occurred_at: {column: t}\nidentifiers: {}\n")
    with pytest.raises(ConfigError, match=r"m\.yaml"):
        ImportMapping.load(path)
