"""The privacy HTTP API on every worker: requests go onto omnid.privacy-requests (the workers
carry them out through the graph protocol), their receipts are read back from
omnid.privacy-receipts. Access exports are served by the lookup API (`.../export`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from aiohttp import web
from confluent_kafka import (
    Message,
)

from omnid.adapters.json_body import UnusableBody, parse_json_body
from omnid.api_auth import Scope, authenticated_token, requires
from omnid.config import Settings
from omnid.contracts import AvroCodec, make_producer
from omnid.contracts.producer import OutputSender
from omnid.identity.model import epoch_millis
from omnid.identity.normalisers import RejectedIdentifier
from omnid.identity.requests import PrivacyKind, ReceiptStatus
from omnid.identity.rules import IdentityRules, normalise
from omnid.pipeline.processor import PRIVACY_REQUEST
from omnid.pipeline.topic_follower import TopicFollower
from omnid.pipeline.topic_names import PipelineTopics

log = logging.getLogger("omnid.privacy")

MAX_REASON_CHARS = 200
_FINAL = (ReceiptStatus.COMPLETED.value, ReceiptStatus.FAILED.value)


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


class ReceiptBook(TopicFollower):
    """The receipts on omnid.privacy-receipts of the latest `privacy_receipt_book_size`
    requests to get one, kept current by a background consumer (the topic holds no personal
    data, so a copy per worker is safe). Bounded, because the compacted topic keeps every
    request ever made; the oldest request leaves the book first."""

    def __init__(self, settings: Settings, topics: PipelineTopics, codec: AvroCodec) -> None:
        super().__init__(settings, topics.privacy_receipts, "receipts")
        self._codec = codec
        self._size = settings.privacy_receipt_book_size
        self._receipts: OrderedDict[str, dict[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, request_id: str) -> dict[str, dict[str, Any]]:
        """The request's receipts by status (empty if none has arrived yet)."""
        with self._lock:
            return dict(self._receipts.get(request_id, {}))

    def take(self, message: Message) -> None:
        value = message.value()
        if value is None:
            return
        try:
            record = self._codec.decode(value).record
        except Exception:  # a foreign record on the topic must not stop the book
            log.warning("receipts topic: undecodable record at offset %d", message.offset())
            return
        record["requested_at"] = epoch_millis(record["requested_at"], "requested_at")
        request_id = record["request_id"]
        with self._lock:
            receipts = self._receipts.setdefault(request_id, {})
            receipts[record["status"]] = record
            self._receipts.move_to_end(request_id)
            if len(self._receipts) > self._size:
                self._receipts.popitem(last=False)


class PrivacyApi:
    """POST /v1/privacy/requests and GET /v1/privacy/requests/{id} (scope privacy:write)."""

    def __init__(
        self, settings: Settings, topics: PipelineTopics, rules: IdentityRules, codec: AvroCodec
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.rules = rules
        self.codec = codec
        self.book = ReceiptBook(settings, topics, codec)
        self._sender: OutputSender | None = None  # made on the first request

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/privacy/requests", self.submit)
        app.router.add_get("/v1/privacy/requests/{request_id}", self.status)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _app: web.Application) -> None:
        self.book.start()

    async def _stop(self, _app: web.Application) -> None:
        await asyncio.to_thread(self.book.stop)
        if self._sender is not None:
            await asyncio.to_thread(self._sender.producer.flush, 10)

    @requires(Scope.PRIVACY_WRITE)
    async def submit(self, request: web.Request) -> web.Response:
        try:
            # Strict and depth-bounded like the collector's: 10,000 nested arrays are a 400,
            # not a RecursionError.
            body = parse_json_body(await request.read())
        except UnusableBody as error:
            return _error(400, "invalid_request", error.detail)
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "the body must be a JSON object")
        try:
            kind = PrivacyKind(body.get("kind"))
        except ValueError:
            kinds = ", ".join(k.value for k in PrivacyKind)
            return _error(400, "invalid_request", f"kind must be one of {kinds}")
        subject, profile_id = body.get("subject"), body.get("profile_id")
        if (subject is None) == (profile_id is None):
            return _error(400, "invalid_request", "give exactly one of subject, profile_id")
        if profile_id is not None and (not isinstance(profile_id, str) or not profile_id):
            return _error(400, "invalid_request", "profile_id must be a non-empty string")
        normalised = None
        if subject is not None:
            if not isinstance(subject, dict) or not all(
                isinstance(subject.get(f), str) for f in ("type", "value")
            ):
                return _error(400, "invalid_request", "subject must be {type, value} strings")
            try:
                normalised = normalise(self.rules, subject["type"], subject["value"])
            except RejectedIdentifier as error:
                return _error(400, "invalid_identifier", f"subject: {error.reason.value}")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
            return _error(400, "invalid_request", f"reason: a string of <= {MAX_REASON_CHARS}")
        request_id = uuid.uuid4().hex
        record = {
            "request_id": request_id,
            "kind": kind.value,
            "subject": {"type": normalised.type, "value": normalised.value} if normalised else None,
            "profile_id": profile_id,
            "requested_by": authenticated_token(request).name,
            "reason": reason,
            "requested_at": int(time.time() * 1000),
        }
        key = normalised.key if normalised is not None else str(profile_id)
        try:
            await asyncio.to_thread(self._send, key, self.codec.encode(PRIVACY_REQUEST, record))
        except RuntimeError as error:
            return _error(503, "kafka_unavailable", str(error))
        log.info("privacy request %s (%s) from %s", request_id, kind.value, record["requested_by"])
        return web.json_response(
            {
                "request_id": request_id,
                "status": "submitted",
                "status_url": f"/v1/privacy/requests/{request_id}",
            },
            status=202,
        )

    def _send(self, key: str, value: bytes) -> None:
        if self._sender is None:
            self._sender = OutputSender(make_producer(self.settings))
        if not self._sender.send_acknowledged(
            [(self.topics.privacy_requests, key.encode(), value)]
        ):
            raise RuntimeError("the request was not acknowledged by Kafka; nothing was sent")

    @requires(Scope.PRIVACY_WRITE)
    async def status(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        receipts = self.book.of(request_id)
        if not receipts:
            return _error(
                404,
                "unknown_request",
                "no receipt yet; retry in a moment (a worker keeps the receipts of the latest "
                f"{self.settings.privacy_receipt_book_size} requests only)",
            )
        final = next((receipts[s] for s in _FINAL if s in receipts), None)
        latest = final or receipts[ReceiptStatus.ACCEPTED.value]
        return web.json_response(
            {
                "request_id": request_id,
                "status": latest["status"],
                "kind": latest["kind"],
                "profile_id": latest["profile_id"],
                "counts": latest["counts"],
                "reason": latest["reason"],
                "receipts": [receipts[s] for s in ("accepted", *_FINAL) if s in receipts],
            }
        )
