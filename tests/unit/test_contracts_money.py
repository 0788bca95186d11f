"""Money at the edges: amounts are finite, bounded decimals; NaN and infinities never get in,
and an order stored before that rule cannot poison a profile's revenue."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from omnid.contracts import CHANNEL_EVENT, AvroCodec, decode_channel_event, new_channel_event
from omnid.contracts.channel_event import check_channel_event
from omnid.contracts.money import MAX_AMOUNT, parse_amount, parse_currency, purchase_record
from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity.model import Event, Identifier, Purchase
from omnid.identity.state import OrderLine, ProfileState
from omnid.identity.survivorship import apply_event, revenue
from omnid.pipeline.lookup import strict_json

CODEC = AvroCodec.from_settings()


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (19.99, Decimal("19.9900")),
        (30, Decimal("30.0000")),
        ("19.99", Decimal("19.9900")),
        (" -5.5 ", Decimal("-5.5000")),
        (0.1 + 0.2, Decimal("0.3000")),  # floats are approximate: 4 places, half-even
        ("0.00005", Decimal("0.0000")),
        (Decimal("1000000000000"), MAX_AMOUNT),
    ],
)
def test_amounts_are_exact_decimals_with_four_places(given: object, kept: Decimal) -> None:
    assert parse_amount(given, "properties.revenue") == kept


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (-1e308, "between"),
        (1e13, "between"),
        ("1e5", "plain decimal"),
        ("NaN", "plain decimal"),
        ("Infinity", "plain decimal"),
        ("12,50", "plain decimal"),
        (True, "bool"),
        (None, "NoneType"),
        ([1], "list"),
    ],
)
def test_unusable_amounts_are_refused_naming_the_field(given: object, words: str) -> None:
    with pytest.raises(InvalidEvent, match=r"properties\.revenue") as refused:
        parse_amount(given, "properties.revenue")
    assert refused.value.reason is RejectionReason.INVALID_FIELD
    assert words in refused.value.detail


def test_currency_is_a_three_letter_code() -> None:
    assert parse_currency(" eur ", "c") == "EUR"
    for bad in ("EURO", "€", "", 978):
        with pytest.raises(InvalidEvent, match="ISO 4217"):
            parse_currency(bad, "c")


def _event(**changes: object) -> dict[str, object]:
    record = new_channel_event(
        event_id="e1",
        channel="web",
        source="unit",
        event_type="purchase",
        identifiers=[("user_id", "u1")],
        occurred_at=1_709_251_200_000,
        received_at=1_709_251_200_000,
        purchase={"order_id": "o1", "amount": "19.99", "currency": "eur"},
    )
    record.update(changes)
    return record


def test_a_purchase_carries_the_exact_amount_and_its_double_through_avro() -> None:
    decoded = decode_channel_event(CODEC, CODEC.encode(CHANNEL_EVENT, _event()))
    assert decoded["purchase"] == purchase_record(
        {"order_id": "o1", "amount": "19.99", "currency": "EUR"}
    )
    assert decoded["purchase"]["amount"] == 19.99
    assert decoded["purchase"]["amount_decimal"] == Decimal("19.9900")


@pytest.mark.parametrize(
    "changes",
    [
        {"purchase": {"order_id": "o", "amount": math.nan, "currency": "EUR"}},
        {"purchase": {"order_id": "o", "amount": math.inf, "currency": "EUR"}},
        {"purchase": {"order_id": "o", "amount": -1e308, "currency": "EUR"}},
        {"traits": {"score": math.nan}},
        {"properties": {"price": -math.inf}},
    ],
    ids=["nan-amount", "inf-amount", "huge-amount", "nan-trait", "inf-property"],
)
def test_a_non_finite_or_huge_number_written_by_another_producer_is_refused_on_decode(
    changes: dict[str, object],
) -> None:
    # Written straight to Kafka (Avro allows NaN doubles), as a 0.1.0 producer would: no decimal.
    payload = CODEC.encode(CHANNEL_EVENT, _event(**changes))
    with pytest.raises(InvalidEvent) as refused:
        decode_channel_event(CODEC, payload)
    assert refused.value.reason is RejectionReason.INVALID_FIELD
    with pytest.raises(InvalidEvent):
        check_channel_event(_event(**changes))


def _order(event_id: str, amount: float) -> Event:
    return Event(
        event_id=event_id,
        channel="web",
        source="unit",
        event_type="purchase",
        occurred_at=1,
        received_at=1,
        identifiers=(Identifier("user_id", "u1"),),
        purchase=Purchase(f"order-{event_id}", amount, "EUR"),
    )


def test_an_order_stored_before_the_rule_does_not_poison_revenue() -> None:
    profile = ProfileState(profile_id="P", created_at=1)
    profile.orders["legacy"] = OrderLine(math.nan, "EUR", (1, 0, "legacy"))
    apply_event(profile, _order("e2", 20.0), source_priority=0, window=10)
    apply_event(profile, _order("e3", 2.5), source_priority=0, window=10)
    assert revenue(profile) == {"EUR": 22.5}


def test_lookup_json_is_strict_even_for_state_stored_before_the_rule() -> None:
    assert strict_json({"a": 1.5, "b": [math.nan], "c": {"d": math.inf}}) == (
        '{"a": 1.5, "b": [null], "c": {"d": null}}'
    )
