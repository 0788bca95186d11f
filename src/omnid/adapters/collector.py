"""`omnid collector`: an HTTP endpoint speaking Segment's Tracking API, plus an ESP webhook.

A request is answered 200 only after Kafka acknowledged every event in it; anything else is a
4xx naming the problem (nothing was published) or a 503 the client should retry.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from omnid.adapters.collector_metrics import (
    collector_metrics,
    collector_metrics_middleware,
)
from omnid.adapters.email_webhook import channel_event_from_esp
from omnid.adapters.json_body import UnusableBody, parse_json_body
from omnid.adapters.segment import WriteKeyTarget, batch_messages, channel_event_from_segment
from omnid.adapters.sink import DeliveryFailed, EventSink
from omnid.adapters.write_keys import load_write_keys
from omnid.api_docs import add_openapi_route
from omnid.config import Settings
from omnid.contracts.channel_event import (
    Channel,
    encode_channel_event,
    events_topic,
    now_millis,
)
from omnid.contracts.codec import AvroCodec
from omnid.contracts.producer import make_producer
from omnid.errors import InvalidEvent, RejectionReason, RequestProblem
from omnid.observability.metrics import render
from omnid.tls import server_context

log = logging.getLogger(__name__)

SEGMENT_BATCH_LIMIT = 500 * 1024  # Segment: 500KB per batch request
SINGLE_TYPES = ("identify", "track", "page", "screen", "alias", "group")

# The collector's metrics (collector_metrics.py), registered at import so /metrics shows every
# series at zero before the first request.
collector_metrics()


class Refusal(Exception):
    """A request the collector answers with an error status and a JSON message."""

    def __init__(
        self,
        status: int,
        reason: RejectionReason | RequestProblem,
        message: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _refusal_for(error: InvalidEvent) -> Refusal:
    status = 413 if error.reason is RejectionReason.OVERSIZED else 400
    return Refusal(status, error.reason, error.detail)


@dataclass
class Collector:
    """The HTTP shell: authenticate, size-check, parse, map (pure), encode, produce, await."""

    sink: EventSink
    codec: AvroCodec
    write_keys: Mapping[str, WriteKeyTarget]
    topic_prefix: str = ""
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = SEGMENT_BATCH_LIMIT
    # A body still arriving after this long is refused (408): slow uploads cannot pile up.
    read_timeout_s: float = 10.0

    def app(self) -> web.Application:
        # aiohttp enforces the body limit while reading (chunked and gzip bodies included).
        app = web.Application(
            client_max_size=self.max_batch_bytes, middlewares=[collector_metrics_middleware]
        )
        routes: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("/v1/batch", self._batch),
            ("/v1/import", self._batch),
            ("/v1/webhooks/email", self._email_webhook),
        ]
        routes += [(f"/v1/{kind}", self._single(kind)) for kind in SINGLE_TYPES]
        for path, handler in routes:
            app.router.add_post(path, handler)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        add_openapi_route(app, "collector")
        return app

    # -- handlers ---------------------------------------------------------------------------

    def _single(self, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            async def records(body: Any, target: WriteKeyTarget) -> list[dict[str, Any]]:
                received_at = now_millis()
                return [channel_event_from_segment(body, target, received_at, kind)]

            return await self._handle(request, self.max_message_bytes, records)

        return handle

    async def _batch(self, request: web.Request) -> web.Response:
        async def records(body: Any, target: WriteKeyTarget) -> list[dict[str, Any]]:
            received_at = now_millis()
            mapped = []
            for index, message in enumerate(batch_messages(body)):
                try:
                    self._check_message_size(message, index)
                    mapped.append(channel_event_from_segment(message, target, received_at))
                except InvalidEvent as error:
                    raise _refusal_for(
                        InvalidEvent(error.reason, f"batch[{index}]: {error.detail}")
                    ) from error
            return mapped

        return await self._handle(request, self.max_batch_bytes, records)

    async def _email_webhook(self, request: web.Request) -> web.Response:
        async def records(body: Any, target: WriteKeyTarget) -> list[dict[str, Any]]:
            if not isinstance(body, list):
                raise Refusal(400, RejectionReason.INVALID_FIELD, "body must be a JSON array")
            received_at = now_millis()
            return [
                channel_event_from_esp(item, index, target, received_at)
                for index, item in enumerate(body)
            ]

        return await self._handle(request, self.max_batch_bytes, records, Channel.EMAIL)

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, _request: web.Request) -> web.Response:
        body, content_type = render()  # the one exposition path, as the worker's /metrics
        return web.Response(body=body, headers={"Content-Type": content_type})

    # -- the common path --------------------------------------------------------------------

    async def _handle(
        self,
        request: web.Request,
        limit: int,
        to_records: Callable[[Any, WriteKeyTarget], Awaitable[list[dict[str, Any]]]],
        required_channel: Channel | None = None,
    ) -> web.Response:
        try:
            header_key = _basic_auth_key(request)
            # A key in the Authorization header is checked before a byte of the body is read.
            target = None if header_key is None else self._target(header_key, required_channel)
            body = _parse(await self._read_body(request, limit))
            if target is None:
                target = self._target(_body_write_key(body), required_channel)
            try:
                records = await to_records(body, target)
                payloads = [
                    encode_channel_event(self.codec, record, self.max_message_bytes)
                    for record in records
                ]
            except InvalidEvent as error:
                raise _refusal_for(error) from error
        except Refusal as refusal:
            return _refused(request, refusal)
        topic = events_topic(target.channel, self.topic_prefix)
        messages = [
            (record["event_id"].encode(), payload)
            for record, payload in zip(records, payloads, strict=True)
        ]
        try:
            await asyncio.wrap_future(self.sink.send_all(topic, messages))
        except DeliveryFailed as error:
            # Some events may have landed; the client's retry re-sends them with the same
            # event ids (messageId), which the pipeline counts once.
            collector_metrics().delivery_failures.inc()
            log.warning("kafka did not acknowledge a request to %s: %s", topic, error)
            return web.json_response(
                {
                    "success": False,
                    "reason": "unavailable",
                    "message": "Kafka did not acknowledge the events; retry the request",
                },
                status=503,
            )
        collector_metrics().record_events_accepted(target.channel.value, len(records))
        return web.json_response({"success": True})

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(request.content_length, limit)
        try:
            async with asyncio.timeout(self.read_timeout_s):
                raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(None, limit) from None
        except TimeoutError:
            raise Refusal(
                408,
                RequestProblem.REQUEST_TIMEOUT,
                f"the body did not arrive within {self.read_timeout_s:g} s",
            ) from None
        except web.RequestPayloadError as error:  # invalid gzip/deflate, broken chunking
            cause = str(error).rpartition("message:")[2].strip() or "unreadable body"
            raise Refusal(
                400,
                RequestProblem.BAD_CONTENT_ENCODING,
                f"the body cannot be read: {cause}",
            ) from None
        except ConnectionResetError:
            raise Refusal(
                400,
                RequestProblem.CLIENT_DISCONNECTED,
                "the client closed the connection before the body was complete",
            ) from None
        if len(raw) > limit:
            raise _too_large(len(raw), limit)
        return raw

    def _target(self, key: str | None, required_channel: Channel | None) -> WriteKeyTarget:
        if key is None:
            raise Refusal(
                401,
                RequestProblem.UNAUTHORIZED,
                "missing write key: use HTTP Basic auth or writeKey",
            )
        target = self.write_keys.get(key)
        if target is None:
            raise Refusal(401, RequestProblem.UNAUTHORIZED, "unknown write key")
        if required_channel is not None and target.channel is not required_channel:
            raise Refusal(
                401,
                RequestProblem.UNAUTHORIZED,
                f"this write key is not for the {required_channel} channel",
            )
        return target

    def _check_message_size(self, message: Any, index: int) -> None:
        size = len(json.dumps(message, separators=(",", ":")).encode())
        if size > self.max_message_bytes:
            raise InvalidEvent(
                RejectionReason.OVERSIZED,
                f"message is {size} bytes; a message may be at most {self.max_message_bytes}",
            )


def _parse(raw: bytes) -> Any:
    try:
        return parse_json_body(raw)
    except UnusableBody as error:
        raise Refusal(400, error.problem, error.detail) from None


def _body_write_key(body: Any) -> str | None:
    key = body.get("writeKey") if isinstance(body, Mapping) else None
    return key if isinstance(key, str) else None


def _refused(request: web.Request, refusal: Refusal) -> web.Response:
    """The answer to a refused request, counted and logged in one line (never a traceback)."""
    collector_metrics().record_request_rejected(refusal.reason.value)
    log.info("refused %s: %s %s", request.path, refusal.status, refusal.reason.value)
    response = web.json_response(
        {"success": False, "reason": refusal.reason.value, "message": refusal.message},
        status=refusal.status,
    )
    if not request.content.at_eof():
        # The rest of the body is unwanted (unauthorised, too slow, undecodable, or its sender
        # gone): close the connection rather than let aiohttp drain it for up to 10 s (which,
        # for an undecodable body, fails again with a traceback).
        response.force_close()
        request.content.feed_eof()
    return response


def _too_large(size: int | None, limit: int) -> Refusal:
    told = f"{size} bytes" if size is not None else "larger than the limit"
    return Refusal(413, RejectionReason.OVERSIZED, f"body is {told}; the limit is {limit} bytes")


def _basic_auth_key(request: web.Request) -> str | None:
    """Segment SDKs send the write key as the Basic auth user name with an empty password."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise Refusal(401, RequestProblem.UNAUTHORIZED, "Authorization must use the Basic scheme")
    try:
        user, _, _password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Refusal(
            401, RequestProblem.UNAUTHORIZED, "Authorization header is not valid Basic"
        ) from None
    return user


# -- running it ---------------------------------------------------------------------------


def delivery_bound(settings: Settings) -> dict[str, int]:
    """Producer settings that make Kafka's silence a 503 within
    `collector_delivery_timeout_seconds` (8 s): below the SDKs' own request timeouts (Segment's
    analytics clients 15 s, RudderStack's JavaScript SDK 10 s in its XHR queue), so the client
    sees the 503 and retries, instead of timing out and retrying while the first copy still
    waits in the producer's queue to be written once the broker is back (both copies would
    then land on `omnid.events.*`). A record that times out in the queue was never sent; only
    one already in flight when the broker died may still have been written ("possibly
    persisted"), and the pipeline counts its retry once by event id."""
    bound_ms = int(settings.collector_delivery_timeout_seconds * 1000)
    # A request that hangs is retried inside the bound; a queued record expires at it.
    return {"message.timeout.ms": bound_ms, "request.timeout.ms": max(1000, bound_ms // 2)}


def collector_from_settings(
    settings: Settings, write_keys_file: Path | None = None, topic_prefix: str | None = None
) -> Collector:
    return Collector(
        sink=EventSink(make_producer(settings, **delivery_bound(settings))),
        codec=AvroCodec.from_settings(settings),
        write_keys=load_write_keys(write_keys_file or settings.write_keys_file),
        topic_prefix=settings.topic_prefix if topic_prefix is None else topic_prefix,
        max_message_bytes=settings.max_event_bytes,
        read_timeout_s=settings.collector_read_timeout_seconds,
    )


class BackgroundCollector:
    """Serves a collector from a thread with its own event loop (tests, benchmarks)."""

    def __init__(
        self,
        collector: Collector,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.collector = collector
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(collector.app(), access_log=None)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True)
        self.url = ""

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, host, port, ssl_context=self._tls)
        self._loop.run_until_complete(site.start())
        bound = self._runner.addresses[0]
        self.url = f"{'https' if self._tls else 'http'}://{bound[0]}:{bound[1]}"
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> BackgroundCollector:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("collector did not start")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self.collector.sink.close()


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    collector = collector_from_settings(settings, args.write_keys, args.topic_prefix)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        web.run_app(
            collector.app(),
            host=args.host or settings.collector_host,
            port=args.port or settings.collector_port,
            ssl_context=server_context(settings),
            access_log=None,
        )
    finally:
        collector.sink.close()
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "collector", help="HTTP collector: Segment Tracking API and email webhook -> Kafka"
    )
    parser.add_argument("--host", help="bind address (default: OMNID_COLLECTOR_HOST)")
    parser.add_argument("--port", type=int, help="port (default: OMNID_COLLECTOR_PORT)")
    parser.add_argument(
        "--write-keys", type=Path, help="write keys YAML (default: OMNID_WRITE_KEYS_FILE)"
    )
    parser.add_argument("--topic-prefix", help="topic prefix (default: OMNID_TOPIC_PREFIX)")
    parser.set_defaults(func=run)
