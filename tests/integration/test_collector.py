"""The HTTP collector on a real broker: accepted events reach Kafka, bad requests get the right
status and message, publish nothing, and the collector keeps serving."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from omnid.adapters.collector import BackgroundCollector, collector_from_settings
from omnid.config import Settings
from omnid.contracts import Channel, events_topic

pytestmark = pytest.mark.kafka

WEB_KEY = ("dev-web-key", "")
EMAIL_KEY = ("dev-email-key", "")


@pytest.fixture(scope="module")
def topic_prefix(events_topics: Any) -> Iterator[str]:
    """The events topics of every channel under a prefix no other test uses."""
    with events_topics("collector", Channel) as prefix:
        yield prefix


READ_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def collector_url(kafka_bootstrap: str, topic_prefix: str) -> Iterator[str]:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, collector_read_timeout_seconds=READ_TIMEOUT_S
    )
    with BackgroundCollector(
        collector_from_settings(settings, topic_prefix=topic_prefix)
    ) as server:
        yield server.url


def post(
    url: str, path: str, body: Any, auth: tuple[str, str] | None = WEB_KEY, **kwargs: Any
) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url + path, data=data, auth=auth, timeout=30, **kwargs)


def test_every_single_message_endpoint_publishes_its_event(
    collector_url: str, topic_prefix: str, read_channel_events: Callable[..., list[dict[str, Any]]]
) -> None:
    run = uuid.uuid4().hex[:6]
    calls = {
        "identify": {"userId": "u-1", "traits": {"email": "ann@example.com"}},
        "track": {"userId": "u-1", "event": "Viewed"},
        "page": {"anonymousId": "a-1", "name": "Home"},
        "screen": {"anonymousId": "a-1", "name": "Basket"},
        "alias": {"userId": "u-1", "previousId": "a-1"},
        "group": {"userId": "u-1", "groupId": "g-1"},
    }
    for kind, body in calls.items():
        response = post(collector_url, f"/v1/{kind}", {**body, "messageId": f"{run}-{kind}"})
        assert (response.status_code, response.json()) == (200, {"success": True}), kind
    events = read_channel_events(
        events_topic(Channel.WEB, topic_prefix), through_event_id=f"{run}-group"
    )
    mine = {e["event_id"]: e for e in events if e["event_id"].startswith(run)}
    assert {k: mine[f"{run}-{k}"]["event_type"] for k in calls} == {k: k for k in calls}
    assert all(e["source"] == "web-shop" and e["channel"] == "web" for e in mine.values())


def test_write_key_in_the_body_and_gzip_bodies_are_accepted(
    collector_url: str, topic_prefix: str, read_channel_events: Callable[..., list[dict[str, Any]]]
) -> None:
    message_id = f"gz-{uuid.uuid4().hex[:6]}"
    body = {
        "writeKey": "dev-web-key",
        "batch": [{"type": "identify", "userId": "u-2", "messageId": message_id}],
    }
    response = post(
        collector_url,
        "/v1/batch",
        gzip.compress(json.dumps(body).encode()),
        auth=None,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    events = read_channel_events(
        events_topic(Channel.WEB, topic_prefix), through_event_id=message_id
    )
    assert events[-1]["identifiers"] == [{"type": "user_id", "value": "u-2"}]


BIG = "x" * 40_000
BAD_REQUESTS = [
    ("malformed-json", "/v1/identify", b'{"userId": "u",', WEB_KEY, 400, "malformed JSON"),
    ("not-utf8", "/v1/identify", b'{"userId": "\xc3\x28"}', WEB_KEY, 400, "not UTF-8"),
    ("missing-ids", "/v1/identify", {"traits": {"name": "Ann"}}, WEB_KEY, 400, "missing ids"),
    (
        "wrong-type-id",
        "/v1/track",
        {"userId": {"id": 1}, "event": "x"},
        WEB_KEY,
        400,
        "userId must be a string",
    ),
    (
        "wrong-type-traits",
        "/v1/identify",
        {"userId": "u", "traits": [1]},
        WEB_KEY,
        400,
        "traits must be an object",
    ),
    (
        "bad-timestamp",
        "/v1/identify",
        {"userId": "u", "timestamp": "soon"},
        WEB_KEY,
        400,
        "timestamp",
    ),
    (
        "batch-not-array",
        "/v1/batch",
        {"batch": {"type": "identify"}},
        WEB_KEY,
        400,
        "batch must be an array",
    ),
    (
        "batch-bad-message",
        "/v1/batch",
        {"batch": [{"type": "identify", "userId": "u"}, {"type": "identify"}]},
        WEB_KEY,
        400,
        "batch[1]: missing ids",
    ),
    (
        "oversize-message",
        "/v1/identify",
        {"userId": "u", "traits": {"essay": BIG}},
        WEB_KEY,
        413,
        "limit is 32768",
    ),
    (
        "oversize-batch-message",
        "/v1/batch",
        {
            "batch": [
                {"type": "identify", "userId": "u"},
                {"type": "identify", "userId": "u", "traits": {"essay": BIG}},
            ]
        },
        WEB_KEY,
        413,
        "batch[1]",
    ),
    (
        "oversize-batch",
        "/v1/batch",
        {"batch": [{"type": "identify", "userId": "u", "traits": {"t": BIG[:30_000]}}] * 18},
        WEB_KEY,
        413,
        "limit is 512000",
    ),
    ("unknown-key", "/v1/identify", {"userId": "u"}, ("not-a-key", ""), 401, "unknown write key"),
    ("no-key", "/v1/identify", {"userId": "u"}, None, 401, "missing write key"),
    (
        "webhook-with-web-key",
        "/v1/webhooks/email",
        [{"email": "a@b.c", "event": "open", "timestamp": 1}],
        WEB_KEY,
        401,
        "email channel",
    ),
    ("webhook-not-array", "/v1/webhooks/email", {"email": "a@b.c"}, EMAIL_KEY, 400, "JSON array"),
    # The README's example: ids are strings; a number is refused, naming the message and field.
    (
        "numeric-user-id",
        "/v1/batch",
        {"batch": [{"type": "identify", "userId": "u"}] * 3 + [{"type": "identify", "userId": 7}]},
        WEB_KEY,
        400,
        "batch[3]: userId must be a string",
    ),
    (
        "nan-revenue",
        "/v1/track",
        b'{"userId": "u", "event": "Order Completed",'
        b' "properties": {"order_id": "o", "revenue": NaN}}',
        WEB_KEY,
        400,
        "NaN is not a JSON number",
    ),
    (
        "infinite-revenue",
        "/v1/track",
        b'{"userId": "u", "event": "Order Completed",'
        b' "properties": {"order_id": "o", "revenue": 1e400}}',
        WEB_KEY,
        400,
        "properties.revenue must be a finite number",
    ),
    (
        "huge-negative-revenue",
        "/v1/track",
        {
            "userId": "u",
            "event": "Order Completed",
            "properties": {"order_id": "o", "total": -1e308},
        },
        WEB_KEY,
        400,
        "properties.total must be between",
    ),
    (
        "infinite-trait",
        "/v1/identify",
        b'{"userId": "u", "traits": {"score": -1e999}}',
        WEB_KEY,
        400,
        "traits.score must be a finite number",
    ),
    ("deep-json", "/v1/batch", b"[" * 10_000 + b"]" * 10_000, WEB_KEY, 400, "nests 10000 levels"),
]


@pytest.mark.parametrize(
    ("path", "body", "auth", "status", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_request_gets_its_status_and_a_precise_message(
    collector_url: str, path: str, body: Any, auth: tuple[str, str] | None, status: int, words: str
) -> None:
    response = post(collector_url, path, body, auth=auth)
    assert response.status_code == status
    assert response.json()["success"] is False
    assert words in response.json()["message"]


def test_chunked_body_over_the_limit_is_refused_without_content_length(collector_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"batch": [' + b'{"type": "identify", "userId": "u"},' * 20_000 + b"{}]}"

    response = requests.post(collector_url + "/v1/batch", data=chunks(), auth=WEB_KEY, timeout=30)
    assert response.status_code == 413


def test_bad_requests_publish_nothing_and_the_collector_keeps_serving(
    collector_url: str, topic_prefix: str, read_channel_events: Callable[..., list[dict[str, Any]]]
) -> None:
    run = uuid.uuid4().hex[:6]
    first, last = f"{run}-first", f"{run}-last"
    assert (
        post(collector_url, "/v1/identify", {"userId": "u", "messageId": first}).status_code == 200
    )
    for _name, path, body, auth, status, _words in BAD_REQUESTS:
        if isinstance(body, dict) and "batch" not in body:
            body = {**body, "messageId": f"{run}-bad"}
        assert post(collector_url, path, body, auth=auth).status_code == status
    assert requests.get(collector_url + "/healthz", timeout=10).json() == {"status": "ok"}
    assert (
        post(collector_url, "/v1/identify", {"userId": "u", "messageId": last}).status_code == 200
    )
    events = read_channel_events(events_topic(Channel.WEB, topic_prefix), through_event_id=last)
    ids = [e["event_id"] for e in events]
    # The topic belongs to this module and its tests run one at a time: nothing else between.
    assert ids[ids.index(first) + 1 :] == [last]


def test_email_webhook_unsubscribe_reaches_kafka_as_a_consent_change(
    collector_url: str, topic_prefix: str, read_channel_events: Callable[..., list[dict[str, Any]]]
) -> None:
    run = uuid.uuid4().hex[:6]
    items = [
        {
            "email": "ann@example.com",
            "event": "delivered",
            "timestamp": 1_763_900_000,
            "sg_message_id": "m",
            "sg_event_id": f"{run}-1",
        },
        {
            "email": "ann@example.com",
            "event": "unsubscribe",
            "timestamp": 1_763_900_060,
            "sg_message_id": "m",
            "sg_event_id": f"{run}-2",
        },
    ]
    response = post(collector_url, "/v1/webhooks/email", items, auth=EMAIL_KEY)
    assert response.status_code == 200, response.text
    events = read_channel_events(
        events_topic(Channel.EMAIL, topic_prefix), through_event_id=f"{run}-2"
    )
    delivered, unsubscribed = events[-2:]
    assert delivered["event_type"] == "email_delivered" and delivered["consent"] is None
    assert unsubscribed["event_type"] == "email_unsubscribe"
    assert unsubscribed["consent"] == [{"purpose": "email_marketing", "granted": False}]
    assert unsubscribed["identifiers"] == [{"type": "email", "value": "ann@example.com"}]
    assert int(unsubscribed["occurred_at"].timestamp()) == 1_763_900_060


def test_an_invalid_gzip_body_is_a_400_not_a_500(collector_url: str) -> None:
    response = post(
        collector_url,
        "/v1/batch",
        b"this is not gzip" * 100,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["reason"] == "bad_content_encoding"
    assert "gzip" in response.json()["message"]


def _raw_request(url: str, headers: str, body_start: bytes) -> socket.socket:
    """An HTTP request whose body stops after `body_start`: the sender keeps the rest back."""
    host, port = url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=60)
    connection.sendall(headers.encode() + b"\r\n" + body_start)
    return connection


def _request_head(key: str, length: int) -> str:
    auth = base64.b64encode(f"{key}:".encode()).decode()
    return (
        "POST /v1/batch HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {auth}\r\nContent-Length: {length}\r\n"
    )


def _status_of(connection: socket.socket) -> tuple[int, dict[str, Any]]:
    reply = b""
    while chunk := connection.recv(65536):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_an_unknown_write_key_is_refused_before_the_body_arrives(collector_url: str) -> None:
    with _raw_request(collector_url, _request_head("not-a-key", 100_000), b'{"batch": [') as conn:
        # The answer comes although the body is far from complete (and not after the timeout).
        started = time.monotonic()
        conn.settimeout(READ_TIMEOUT_S / 2)
        status, body = _status_of(conn)
    assert (status, body["reason"]) == (401, "unauthorized"), time.monotonic() - started


def test_a_slow_upload_is_answered_408_and_its_connection_closed(collector_url: str) -> None:
    with _raw_request(collector_url, _request_head("dev-web-key", 100_000), b'{"batch": [') as conn:
        status, body = _status_of(conn)  # returns once the collector closes the connection
    assert (status, body["reason"]) == (408, "request_timeout")
    assert f"within {READ_TIMEOUT_S:g} s" in body["message"]


def test_each_dropped_upload_is_one_log_line_and_no_traceback(
    collector_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dropped = 20
    for _ in range(dropped):
        _raw_request(collector_url, _request_head("dev-web-key", 100_000), b'{"batch": [').close()

    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "client_disconnected" in r.getMessage()]

    deadline = time.monotonic() + 120
    while len(lines()) < dropped and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(lines()) == dropped
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in caplog.records)
