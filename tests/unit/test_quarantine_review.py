"""The quarantine review's shell: the list built from the identity changelog, masked values and
item ids, the API's refusals of what it cannot act on, and the CLI's parsing and table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from omnid.api_auth import ApiTokens, Scope, auth_middleware, bearer_header, write_token
from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.pipeline.quarantine_api import QuarantineApi, QuarantineBook, item_id, mask
from omnid.pipeline.quarantine_client import review_body, table_lines
from omnid.pipeline.topic_names import PipelineTopics
from omnid.rules_file import load_rules

CODEC = AvroCodec.from_settings()
SECRET = b"test-secret"
STORE_PHONE = {"type": "phone", "value": "+441134960003"}


def change(kind: str, identifier: dict[str, str], **fields: Any) -> SimpleNamespace:
    """A changelog message as the follower hands it over."""
    record = {
        "change_id": f"c-{kind}",
        "kind": kind,
        "profile_id": "p-holder",
        "identifiers": [identifier],
        "at": 1_790_000_000_000,
        **fields,
    }
    payload = CODEC.encode("omnid.IdentityChange", record)
    return SimpleNamespace(value=lambda: payload, offset=lambda: 0, headers=lambda: None)


def quarantined(identifier: dict[str, str], since: int = 1_790_000_000_000) -> SimpleNamespace:
    return change(
        "quarantined",
        identifier,
        event_id="event-that-crossed-it",
        reason="quarantine_after:phone",
        counts={"claimants": 5},
        quarantine={"since": since, "channels": ["pos"], "sources": ["store-003-till-1"]},
    )


def book() -> QuarantineBook:
    settings = Settings(kafka_bootstrap="127.0.0.1:9")
    return QuarantineBook(settings, PipelineTopics.under("qtest"), CODEC, SECRET)


def test_masking_keeps_enough_to_recognise_a_generic_value_and_not_a_persons() -> None:
    assert mask("email", "kasse@filiale.example") == "k***@filiale.example"
    assert mask("phone", "+441134960003") == "+44********03"
    assert mask("loyalty_id", "F007000001") == "F0******01"
    assert mask("crm_id", "abcd") == "****"


def test_an_item_id_is_an_hmac_of_the_key_the_same_on_every_worker() -> None:
    key = "phone:+441134960003"
    assert item_id(SECRET, key) == item_id(SECRET, key) != item_id(b"other", key)
    assert item_id(SECRET, key) != item_id(SECRET, "phone:+441134960004")
    assert "4960003" not in item_id(SECRET, key)


def test_the_book_lists_what_the_changelog_quarantined_until_released_or_blocked() -> None:
    reviews = book()
    till = {"type": "email", "value": "kasse@filiale.example"}
    reviews.take(quarantined(STORE_PHONE, since=2_000))
    reviews.take(quarantined(till, since=1_000))
    reviews.take(change("merged", {"type": "email", "value": "ann@inbox.example"}))
    reviews.take(
        SimpleNamespace(value=lambda: b"\x00 not avro", offset=lambda: 7, headers=lambda: None)
    )
    items = reviews.items()
    assert [i["type"] for i in items] == ["email", "phone"]  # the longest quarantined first
    phone = items[1]
    assert phone == {
        "id": item_id(SECRET, "phone:+441134960003"),
        "type": "phone",
        "value_masked": "+44********03",
        "since": 2_000,
        "claimants": 5,
        "channels": ["pos"],
        "sources": ["store-003-till-1"],
        "reason": "quarantine_after:phone",
    }
    assert "+441134960003" not in str(items)
    assert reviews.key_of(phone["id"]) == "phone:+441134960003"
    reviews.take(change("quarantine_released", STORE_PHONE, operator="ops", event_id="r1"))
    reviews.take(change("quarantine_blocked", till, operator="ops", event_id="r2"))
    assert reviews.items() == [] and reviews.key_of(phone["id"]) is None


def review_app(tmp_path: Path) -> tuple[web.Application, QuarantineApi, str]:
    token = write_token(tmp_path / "tokens.yaml", "ops", {Scope.ADMIN})
    settings = Settings(kafka_bootstrap="127.0.0.1:9")
    api = QuarantineApi(
        settings,
        PipelineTopics.under("qtest"),
        load_rules(),
        CODEC,
        operations=None,  # type: ignore[arg-type]
    )
    app = web.Application(middlewares=[auth_middleware(ApiTokens.load(tmp_path / "tokens.yaml"))])
    app.router.add_get("/v1/quarantine", api.list_items)
    app.router.add_post("/v1/quarantine/release", api.release)
    app.router.add_post("/v1/quarantine/block", api.block)
    return app, api, token


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"[1]", 400, "invalid_request"),
        (b"not json", 400, "invalid_request"),
        (b'{"id": "x", "type": "phone", "value": "1"}', 400, "invalid_request"),
        (b'{"type": "phone", "value": "not a number"}', 400, "invalid_identifier"),
        (b'{"type": "shoe_size", "value": "42"}', 400, "invalid_identifier"),
        (b'{"id": "0123456789abcdef01234567"}', 404, "not_quarantined"),
        (b'{"type": "phone", "value": "0113 496 0009"}', 404, "not_quarantined"),
    ],
)
def test_release_and_block_refuse_what_names_no_quarantined_value(
    tmp_path: Path, body: bytes, status: int, error: str
) -> None:
    app, api, token = review_app(tmp_path)
    api.book._caught_up.set()  # read to its end: an empty changelog

    async def check() -> None:
        async with TestClient(TestServer(app)) as client:
            for action in ("release", "block"):
                response = await client.post(
                    f"/v1/quarantine/{action}", data=body, headers=bearer_header(token)
                )
                assert response.status == status
                assert (await response.json())["error"] == error

    asyncio.run(check())


def test_the_list_waits_for_the_changelog_then_answers(tmp_path: Path) -> None:
    app, api, token = review_app(tmp_path)
    api.book.take(quarantined(STORE_PHONE))
    api.book._caught_up.set()

    async def check() -> None:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/v1/quarantine", headers=bearer_header(token))
            assert response.status == 200
            body = await response.json()
            assert body["count"] == 1 and body["items"][0]["value_masked"] == "+44********03"

    asyncio.run(check())


def test_the_cli_takes_an_id_or_a_value_as_typed_anywhere() -> None:
    assert review_body("phone:0113 496 0003") == {"type": "phone", "value": "0113 496 0003"}
    assert review_body(" 0123abc ") == {"id": "0123abc"}
    for unusable in ("", "phone:", ":x"):
        with pytest.raises(SystemExit, match="neither an id nor TYPE:VALUE"):
            review_body(unusable)


def test_the_cli_table_has_a_row_per_item_under_its_headings() -> None:
    reviews = book()
    reviews.take(quarantined(STORE_PHONE))
    header, row = table_lines(reviews.items())
    assert header.split() == ["id", "type", "value", "since", "profiles", "channels", "sources"]
    assert row.split()[1:] == [
        "phone", "+44********03", "2026-09-21", "14:13:20Z", "5", "pos", "store-003-till-1"
    ]  # fmt: skip
