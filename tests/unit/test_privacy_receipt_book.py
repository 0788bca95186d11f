"""The worker's book of privacy receipts keeps the latest requests only (a documented bound)."""

from __future__ import annotations

from typing import Any

from omnid.config import Settings
from omnid.contracts import AvroCodec, default_catalog
from omnid.identity.model import Identifier
from omnid.identity.requests import PrivacyKind, PrivacyRequest, ReceiptStatus, receipt_record
from omnid.pipeline.privacy_api import ReceiptBook
from omnid.pipeline.processor import PRIVACY_RECEIPT
from omnid.pipeline.topic_names import PipelineTopics

CODEC = AvroCodec(default_catalog())


class Received:
    """A consumed record, as the book's consumer hands it over."""

    def __init__(self, record: dict[str, Any]) -> None:
        self._value = CODEC.encode(PRIVACY_RECEIPT, record)

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return 0


def receipt_of(request_id: str, status: ReceiptStatus, **counts: int) -> Received:
    request = PrivacyRequest(
        request_id, PrivacyKind.ERASE, Identifier("email", "x@shop.io"), None, "ops", None, 1
    )
    return Received(receipt_record(request, status, "P1", counts))


def test_the_book_keeps_the_latest_requests_and_the_latest_receipt_of_each_status() -> None:
    book = ReceiptBook(Settings(privacy_receipt_book_size=2), PipelineTopics.under("t"), CODEC)
    book.take(receipt_of("r1", ReceiptStatus.ACCEPTED))
    book.take(receipt_of("r2", ReceiptStatus.ACCEPTED))
    # r1 completes, then completes again with a racing merge counted: the latest counts win
    book.take(receipt_of("r1", ReceiptStatus.COMPLETED, profiles_erased=1))
    book.take(receipt_of("r1", ReceiptStatus.COMPLETED, profiles_erased=2))
    book.take(receipt_of("r3", ReceiptStatus.ACCEPTED))

    assert book.of("r2") == {}, "the request that got no receipt for longest left the book"
    assert set(book.of("r1")) == {"accepted", "completed"}
    assert book.of("r1")["completed"]["counts"] == {"profiles_erased": 2}
    assert set(book.of("r3")) == {"accepted"}
