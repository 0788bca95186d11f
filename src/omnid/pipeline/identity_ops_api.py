"""The identity operations API on every worker (scope admin): split a profile, merge two by
hand, lift a re-link ban. Each request becomes a command on omnid.profile-commands, keyed by
the profile it is about, and runs through the graph protocol like any event's commands; the
answer is read back from omnid.identity-changelog, where the operation's changes carry its
request id (`event_id`) and the operator (the token's name)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

from aiohttp import web
from confluent_kafka import Message

from omnid.adapters.json_body import UnusableBody, parse_json_body
from omnid.api_auth import Scope, authenticated_token, requires
from omnid.config import Settings
from omnid.contracts import AvroCodec, make_producer
from omnid.contracts.producer import OutputSender
from omnid.identity import records
from omnid.identity.commands import Command, MergeByHand, Split, Unban
from omnid.identity.model import epoch_millis
from omnid.identity.normalisers import RejectedIdentifier
from omnid.identity.operations import ban_sides
from omnid.identity.rendering import ChangeKind
from omnid.identity.rules import IdentityRules, normalise
from omnid.pipeline.processor import identity_change_tags
from omnid.pipeline.topic_follower import TopicFollower
from omnid.pipeline.topic_names import PipelineTopics

log = logging.getLogger("omnid.identity_ops")

# The kinds of change that answer an operation, and whether each means it was carried out.
ANSWERS = {
    ChangeKind.SPLIT: True,
    ChangeKind.SPLIT_REFUSED: False,
    ChangeKind.MERGED: True,
    ChangeKind.MERGE_REFUSED: False,
    ChangeKind.UNBANNED: True,
    ChangeKind.UNBAN_REFUSED: False,
    ChangeKind.QUARANTINE_RELEASED: True,
    ChangeKind.QUARANTINE_BLOCKED: True,
    ChangeKind.QUARANTINE_REFUSED: False,
}
OUTCOMES_KEPT = 10_000
DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0


def problem(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


class OperationOutcomes(TopicFollower):
    """The identity changes of operations (those naming an operator), read from the changelog's
    end as it was when the worker started: enough to answer what this worker's API asked."""

    def __init__(self, settings: Settings, topics: PipelineTopics, codec: AvroCodec) -> None:
        super().__init__(settings, topics.identity_changelog, "operations", from_end=True)
        self._codec = codec
        self._changes: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, request_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._changes.get(request_id, ()))

    def take(self, message: Message) -> None:
        if message.value() is None:
            return
        tags = identity_change_tags(message.headers())
        if tags is not None and not tags[1]:
            return  # not an operation's
        try:
            record = self._codec.decode(message.value()).record
        except Exception:  # a foreign record on the topic must not stop the follower
            log.warning("identity changelog: undecodable record at offset %d", message.offset())
            return
        if record.get("operator") is None or record.get("event_id") is None:
            return
        record["at"] = epoch_millis(record["at"], "at")
        with self._lock:
            self._changes.setdefault(record["event_id"], []).append(record)
            while len(self._changes) > OUTCOMES_KEPT:
                self._changes.popitem(last=False)


def outcome_body(request_id: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """What an operation came to: done, refused (with the reason) or still pending."""
    answers = [c for c in changes if c["kind"] in ANSWERS]
    if not answers:
        status = "pending"
    elif any(not ANSWERS[c["kind"]] for c in answers):
        status = "refused"
    else:
        status = "done"
    reasons = [c["reason"] for c in answers if not ANSWERS[c["kind"]]]
    return {
        "request_id": request_id,
        "status": status,
        "reason": reasons[0] if reasons else None,
        "changes": answers,
        "status_url": f"/v1/identity-operations/{request_id}",
    }


class IdentityOperationsApi:
    """POST /v1/profiles/{id}/split, POST /v1/profiles/merge, DELETE /v1/bans/{ban_id},
    GET /v1/identity-operations/{request_id} (scope admin)."""

    def __init__(
        self, settings: Settings, topics: PipelineTopics, rules: IdentityRules, codec: AvroCodec
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.rules = rules
        self.outcomes = OperationOutcomes(settings, topics, codec)
        self._sender: OutputSender | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/profiles/merge", self.merge)
        app.router.add_post("/v1/profiles/{profile_id}/split", self.split)
        app.router.add_delete("/v1/bans/{ban_id}", self.unban)
        app.router.add_get("/v1/identity-operations/{request_id}", self.status)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _app: web.Application) -> None:
        self.outcomes.start()

    async def _stop(self, _app: web.Application) -> None:
        await asyncio.to_thread(self.outcomes.stop)
        if self._sender is not None:
            await asyncio.to_thread(self._sender.producer.flush, 10)

    @requires(Scope.ADMIN)
    async def split(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        given = body.get("identifiers")
        if not isinstance(given, list) or not given:
            return problem(400, "invalid_request", "identifiers: a non-empty list of {type, value}")
        keys = []
        for item in given:
            if not isinstance(item, dict) or not all(
                isinstance(item.get(f), str) for f in ("type", "value")
            ):
                return problem(400, "invalid_request", "identifiers: a list of {type, value}")
            try:
                keys.append(normalise(self.rules, item["type"], item["value"]).key)
            except RejectedIdentifier as error:
                return problem(400, "invalid_identifier", f"{item['type']}: {error.reason.value}")
        profile_id = request.match_info["profile_id"]
        request_id, operator, at = new_request_id(), authenticated_token(request).name, now_ms()
        command = Split(profile_id, tuple(sorted(set(keys))), operator, request_id, at)
        return await self.run_operation(request, [command], request_id)

    @requires(Scope.ADMIN)
    async def merge(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        if isinstance(body, web.Response):
            return body
        ids = body.get("profile_ids")
        if (
            not isinstance(ids, list)
            or len(ids) != 2
            or not all(isinstance(i, str) and i for i in ids)
        ):
            return problem(400, "invalid_request", "profile_ids: a list of two profile ids")
        if ids[0] == ids[1]:
            return problem(400, "invalid_request", "profile_ids: two different profiles")
        request_id, operator, at = new_request_id(), authenticated_token(request).name, now_ms()
        command = MergeByHand(ids[0], ids[1], operator, request_id, at)
        return await self.run_operation(request, [command], request_id)

    @requires(Scope.ADMIN)
    async def unban(self, request: web.Request) -> web.Response:
        ban_id = request.match_info["ban_id"]
        try:
            sides = ban_sides(ban_id)
        except ValueError as error:
            return problem(400, "invalid_request", str(error))
        request_id, operator, at = new_request_id(), authenticated_token(request).name, now_ms()
        commands: list[Command] = [Unban(side, ban_id, operator, request_id, at) for side in sides]
        return await self.run_operation(request, commands, request_id)

    @requires(Scope.ADMIN)
    async def status(self, request: web.Request) -> web.Response:
        request_id = request.match_info["request_id"]
        body = outcome_body(request_id, self.outcomes.of(request_id))
        if body["status"] == "pending":
            return web.json_response(body, status=404 if not body["changes"] else 202)
        return web.json_response(body)

    async def run_operation(
        self, request: web.Request, commands: list[Command], request_id: str
    ) -> web.Response:
        """Sends the commands of one operation and waits (`?wait=` seconds) for its answer on
        the changelog: 200 done, 409 refused, 202 still pending (its status_url follows it).
        The quarantine review's release and block run through here too."""
        try:
            wait = min(float(request.query.get("wait", DEFAULT_WAIT_S)), MAX_WAIT_S)
        except ValueError:
            return problem(400, "invalid_request", "wait: seconds as a number")
        if not await asyncio.to_thread(self.outcomes.wait_positioned, 30):
            return problem(503, "kafka_unavailable", "the identity changelog cannot be read")
        try:
            await asyncio.to_thread(self._send, commands)
        except RuntimeError as error:
            return problem(503, "kafka_unavailable", str(error))
        log.info(
            "identity operation %s (%s) from %s",
            request_id,
            type(commands[0]).__name__,
            authenticated_token(request).name,
        )
        deadline = time.monotonic() + wait
        expected = len(commands)  # an unban is answered by each side
        while True:
            body = outcome_body(request_id, self.outcomes.of(request_id))
            if body["status"] == "refused" or (
                body["status"] == "done" and len(body["changes"]) >= expected
            ):
                return web.json_response(body, status=200 if body["status"] == "done" else 409)
            if time.monotonic() >= deadline:
                return web.json_response(body, status=202)
            await asyncio.sleep(0.1)

    def _send(self, commands: list[Command]) -> None:
        if self._sender is None:
            # Keyed like the workers key their commands, so a command reaches its profile.
            self._sender = OutputSender(make_producer(self.settings, partitioner="murmur2_random"))
        if not self._sender.send_acknowledged(
            (self.topics.command_topic(c.stage), c.key.encode(), records.encode(c))
            for c in commands
        ):
            raise RuntimeError("the operation was not acknowledged by Kafka")


async def json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        # Strict and depth-bounded like the collector's: no RecursionError on deep nesting.
        body = parse_json_body(await request.read())
    except UnusableBody as error:
        return problem(400, "invalid_request", error.detail)
    if not isinstance(body, dict):
        return problem(400, "invalid_request", "the body must be a JSON object")
    return body


def new_request_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)
