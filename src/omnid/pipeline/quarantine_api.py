"""The quarantine review on every worker (scope admin): GET /v1/quarantine lists the identifiers
the pipeline quarantined (a value typed in for many people: a store's phone at the till, a
placeholder email, a shared card), POST /v1/quarantine/release lets one link again and
POST /v1/quarantine/block keeps it out for good.

The list is what the identity changelog says: each worker follows it from the beginning
(`quarantined` adds a value, `quarantine_released` and `quarantine_blocked` remove it), so any
worker answers for all partitions without asking the others. A review shows no personal data
but the value itself, and that only masked: since when, how many profiles claimed it, and the
channels and sources of their events. An item is named by an HMAC of its identifier key, which
is what the console and the CLI act on. Release and block are commands keyed by the identifier,
through the same path and outcome tracking as the identity operations."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from confluent_kafka import Message

from omnid.api_auth import Scope, authenticated_token, requires
from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.identity.commands import QuarantineBlock, QuarantineRelease
from omnid.identity.model import Identifier, epoch_millis
from omnid.identity.normalisers import RejectedIdentifier
from omnid.identity.rendering import ChangeKind
from omnid.identity.rules import IdentityRules, normalise
from omnid.pipeline.identity_ops_api import (
    IdentityOperationsApi,
    json_object,
    new_request_id,
    now_ms,
    problem,
)
from omnid.pipeline.processor import identity_change_tags
from omnid.pipeline.topic_follower import TopicFollower
from omnid.pipeline.topic_names import PipelineTopics

log = logging.getLogger("omnid.quarantine")

CATCH_UP_WAIT_S = 10.0
ITEM_ID_HEX = 24  # 96 bits of the HMAC: unique among any number of quarantined values


def mask(identifier_type: str, value: str) -> str:
    """Enough of a value to recognise a store's number or a placeholder address, not enough to
    read a person's: an email keeps its first letter and its domain, anything else its first
    quarter and last two characters."""
    if identifier_type == "email" and "@" in value:
        local, _, domain = value.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) <= 4:
        return "*" * len(value)
    shown = max(1, len(value) // 4)
    return value[:shown] + "*" * (len(value) - shown - 2) + value[-2:]


def item_id(secret: bytes, identifier_key: str) -> str:
    """The public name of a quarantined value: an HMAC of its key, so it says nothing of the
    value and every worker (sharing the secret) names it alike."""
    digest = hmac.new(secret, b"quarantine-item:" + identifier_key.encode(), hashlib.sha256)
    return digest.hexdigest()[:ITEM_ID_HEX]


class QuarantineBook(TopicFollower):
    """Quarantined identifiers by key, from the identity changelog read from the beginning."""

    ENDS = (ChangeKind.QUARANTINE_RELEASED, ChangeKind.QUARANTINE_BLOCKED)
    KINDS = frozenset((ChangeKind.QUARANTINED, *ENDS))

    def __init__(
        self, settings: Settings, topics: PipelineTopics, codec: AvroCodec, secret: bytes
    ) -> None:
        super().__init__(settings, topics.identity_changelog, "quarantine")
        self._codec = codec
        self._secret = secret
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def items(self) -> list[dict[str, Any]]:
        """What is quarantined now, the longest quarantined first."""
        with self._lock:
            listed = [dict(item) for item in self._items.values()]
        return sorted(listed, key=lambda item: (item["since"], item["id"]))

    def key_of(self, given_id: str) -> str | None:
        """The identifier key of a listed item, by its id."""
        with self._lock:
            return next((k for k, item in self._items.items() if item["id"] == given_id), None)

    def holds(self, identifier_key: str) -> bool:
        with self._lock:
            return identifier_key in self._items

    def take(self, message: Message) -> None:
        if message.value() is None:
            return
        tags = identity_change_tags(message.headers())
        if tags is not None and tags[0] not in self.KINDS:
            return
        try:
            record = self._codec.decode(message.value()).record
        except Exception:  # a foreign record on the topic must not stop the book
            log.warning("identity changelog: undecodable record at offset %d", message.offset())
            return
        kind = record["kind"]
        if kind not in self.KINDS or not record["identifiers"]:
            return
        identifier = record["identifiers"][0]
        key = f"{identifier['type']}:{identifier['value']}"
        with self._lock:
            if kind in self.ENDS:
                self._items.pop(key, None)
                return
            detail = record.get("quarantine") or {}
            since = detail.get("since", record["at"])
            self._items[key] = {
                "id": item_id(self._secret, key),
                "type": identifier["type"],
                "value_masked": mask(identifier["type"], identifier["value"]),
                "since": epoch_millis(since, "since"),
                "claimants": record["counts"].get("claimants"),
                "channels": list(detail.get("channels", [])),
                "sources": list(detail.get("sources", [])),
                "reason": record["reason"],
            }


class QuarantineApi:
    """GET /v1/quarantine, POST /v1/quarantine/release, POST /v1/quarantine/block (admin)."""

    def __init__(
        self,
        settings: Settings,
        topics: PipelineTopics,
        rules: IdentityRules,
        codec: AvroCodec,
        operations: IdentityOperationsApi,
    ) -> None:
        self.rules = rules
        self.operations = operations
        self.book = QuarantineBook(settings, topics, codec, settings.suppression_secret.encode())

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/quarantine", self.list_items)
        app.router.add_post("/v1/quarantine/release", self.release)
        app.router.add_post("/v1/quarantine/block", self.block)
        app.cleanup_ctx.append(self._following)

    async def _following(self, _app: web.Application) -> AsyncIterator[None]:
        """The book follows the changelog while the application serves."""
        self.book.start()
        yield
        await asyncio.to_thread(self.book.stop)

    @requires(Scope.ADMIN)
    async def list_items(self, _request: web.Request) -> web.Response:
        if not await asyncio.to_thread(self.book.wait_caught_up, CATCH_UP_WAIT_S):
            return problem(
                503, "catching_up", "this worker is still reading the identity changelog"
            )
        items = self.book.items()
        return web.json_response({"items": items, "count": len(items)})

    @requires(Scope.ADMIN)
    async def release(self, request: web.Request) -> web.Response:
        return await self._review(request, QuarantineRelease)

    @requires(Scope.ADMIN)
    async def block(self, request: web.Request) -> web.Response:
        return await self._review(request, QuarantineBlock)

    async def _review(
        self, request: web.Request, command: type[QuarantineRelease] | type[QuarantineBlock]
    ) -> web.Response:
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        identifier = await self._identifier(body)
        if isinstance(identifier, web.Response):
            return identifier
        request_id, operator = new_request_id(), authenticated_token(request).name
        sent = command(identifier, operator, request_id, now_ms())
        return await self.operations.run_operation(request, [sent], request_id)

    async def _identifier(self, body: dict[str, Any]) -> Identifier | web.Response:
        """The listed identifier a review names: `id` (from the list) or `type` and `value` (as
        anyone would type it; normalised like the lookup API). A review acts only on what the
        list shows, so nothing is sent for a value that is not quarantined."""
        given_id, given_type, value = body.get("id"), body.get("type"), body.get("value")
        if isinstance(given_id, str) and given_type is None and value is None:
            key = self.book.key_of(given_id)
        elif isinstance(given_type, str) and isinstance(value, str) and given_id is None:
            try:
                key = normalise(self.rules, given_type, value).key
            except RejectedIdentifier as error:
                return problem(400, "invalid_identifier", f"{given_type}: {error.reason.value}")
        else:
            return problem(
                400,
                "invalid_request",
                'give {"id": ...} from the list, or {"type": ..., "value": ...}',
            )
        if not await asyncio.to_thread(self.book.wait_caught_up, CATCH_UP_WAIT_S):
            return problem(
                503, "catching_up", "this worker is still reading the identity changelog"
            )
        if key is None or not self.book.holds(key):
            return problem(404, "not_quarantined", "no quarantined identifier is listed as this")
        identifier_type, _, identifier_value = key.partition(":")
        return Identifier(identifier_type, identifier_value)
