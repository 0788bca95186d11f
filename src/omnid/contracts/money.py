"""Order amounts: exact decimals in a currency's major unit, finite and bounded.

Money crosses omnid as a decimal (JSON numbers or decimal strings in, Avro `decimal(18, 4)` in
`Purchase.amount_decimal`); `Purchase.amount` keeps the same value as a double for readers of
the 0.1.0 schema. NaN, infinities, exponents and magnitudes beyond `MAX_AMOUNT` are refused
with the field's name, so one bad order can never poison a profile's revenue.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from omnid.errors import InvalidEvent, RejectionReason

# A trillion of any currency's major unit: above every real order, far below double precision
# trouble (2^53) and within decimal(18, 4).
MAX_AMOUNT = Decimal(10) ** 12
AMOUNT_SCALE = 4
_QUANTUM = Decimal(1).scaleb(-AMOUNT_SCALE)
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _invalid(detail: str) -> InvalidEvent:
    return InvalidEvent(RejectionReason.INVALID_FIELD, detail)


def parse_amount(value: Any, field: str) -> Decimal:
    """`value` (int, finite float, Decimal or plain decimal text such as "19.99") as a Decimal
    rounded half-even to 4 places; InvalidEvent naming `field` otherwise."""
    if isinstance(value, bool):
        raise _invalid(f"{field} must be a number or a decimal string, got bool")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(f"{field} must be a finite number, got {value}")
        amount = Decimal(repr(value))
    elif isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise _invalid(f"{field} must be a plain decimal like 19.99, got {value[:40]!r}")
        amount = Decimal(text)
    else:
        raise _invalid(f"{field} must be a number or a decimal string, got {type(value).__name__}")
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        raise _invalid(f"{field} must be between -{MAX_AMOUNT:,} and {MAX_AMOUNT:,}")
    try:
        return amount.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # pragma: no cover - bounded above, so quantize always fits
        raise _invalid(f"{field} has too many digits") from None


def parse_currency(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip().upper()):
        shown = value[:10] if isinstance(value, str) else type(value).__name__
        raise _invalid(f"{field} must be a 3-letter ISO 4217 code such as EUR, got {shown!r}")
    return value.strip().upper()


def purchase_record(purchase: Mapping[str, Any]) -> dict[str, Any]:
    """The Avro `Purchase` for `{order_id, amount, currency}`: the amount exactly and, for
    0.1.0 readers, as a double."""
    order_id = purchase.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise _invalid("purchase.order_id must be a non-empty string")
    exact = parse_amount(purchase.get("amount"), "purchase.amount")
    return {
        "order_id": order_id,
        "amount": float(exact),
        "currency": parse_currency(purchase.get("currency"), "purchase.currency"),
        "amount_decimal": exact,
    }


def check_purchase_amount(purchase: Mapping[str, Any]) -> None:
    """A decoded `Purchase` holds a usable amount (writers of 0.1.0 sent only the double)."""
    parse_amount(purchase.get("amount"), "purchase.amount")
    if purchase.get("amount_decimal") is not None:
        parse_amount(purchase["amount_decimal"], "purchase.amount_decimal")
