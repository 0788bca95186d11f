"""Quarantine with two real workers on the real broker: a store's phone typed at the till for
many customers is quarantined and the profiles it glued come apart; the review API (on either
worker) and `omnid quarantine list` show it; `release` lets it link again, so its merges follow,
and `block` keeps another store's phone out for good."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from omnid.config import Settings
from omnid.contracts import AvroCodec, new_channel_event
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.testing.topic_io import publish_events, read_topic
from omnid.testing.workers import Pipeline, get_json, running_pipeline, send_json

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

PARTITIONS = 6
BASE = 1_792_000_000_000
# Two stores' own numbers as cashiers type them; five customers each, who gave no phone.
RELEASED_STORE = ("phone", "0113 496 0003")
BLOCKED_STORE = ("phone", "0113 496 0007")
CUSTOMERS = 5
LATE_CARD = ("loyalty_id", "L-LATE-3")
WAIT_S = 120.0  # for a loaded machine: the changelog follower and the pipeline commit in batches


def email(store: str, n: int) -> tuple[str, str]:
    return ("email", f"walk-in.{store}.{n}@inbox.example")


def event(event_id: str, at: int, channel: str, source: str, *ids: tuple[str, str]) -> Any:
    return new_channel_event(
        event_id=event_id,
        channel=channel,
        source=source,
        event_type="purchase" if channel == "pos" else "identify",
        identifiers=list(ids),
        occurred_at=BASE + at,
        received_at=BASE + at,
    )


def store_events(store: str, phone: tuple[str, str], start: int) -> list[Any]:
    """Each customer signs up on the web, then buys at the store's till, where the cashier types
    the store's number into the phone field."""
    events = []
    for n in range(CUSTOMERS):
        at = start + n * 10_000
        events.append(event(f"{store}-web-{n}", at, "web", "webshop", email(store, n)))
        events.append(
            event(f"{store}-till-{n}", at + 5_000, "pos", f"{store}-till-1", email(store, n), phone)
        )
    return events


def lookup(pipeline: Pipeline, worker: int, identifier: tuple[str, str]) -> tuple[Any, int]:
    url = f"{pipeline.workers[worker].url}/v1/identifiers/{identifier[0]}/{quote(identifier[1])}"
    return get_json(url, token=pipeline.api_token)


def profile_of(pipeline: Pipeline, identifier: tuple[str, str]) -> dict[str, Any]:
    body, status = lookup(pipeline, 0, identifier)
    assert status == 200 and body is not None, (identifier, status, body)
    return body


def listed(pipeline: Pipeline, worker: int) -> list[dict[str, Any]]:
    body, status = get_json(
        f"{pipeline.workers[worker].url}/v1/quarantine", token=pipeline.api_token
    )
    assert status == 200 and body is not None, (status, body)
    items: list[dict[str, Any]] = body["items"]
    return items


def until(condition: Any, what: str) -> Any:
    """Polls `condition()` until it gives something truthy (a generous deadline, not a measure)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if outcome := condition():
            return outcome
        time.sleep(0.5)
    raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")


def omnid_cli(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMNID_API_TOKEN": pipeline.api_token}
    return subprocess.run(
        [sys.executable, "-m", "omnid.cli", "quarantine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@dataclass
class QuarantineRun:
    pipeline: Pipeline
    quarantined: list[dict[str, Any]]  # the list as worker 2 gave it before any review
    by_store: dict[str, dict[str, Any]]  # its items by the store they were typed in at
    apart: dict[str, set[str]]  # store -> the customers' profile ids while quarantined
    cli_list: subprocess.CompletedProcess[str]
    release: subprocess.CompletedProcess[str]
    block: tuple[dict[str, Any], int]
    again: tuple[dict[str, Any], int]


@pytest.fixture(scope="module")
def run(
    kafka_config: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QuarantineRun]:
    prefix = f"test-quarantine-{uuid.uuid4().hex[:8]}"
    spec = load_topology(Settings().topics_file)
    apply_topics(kafka_config, spec, prefix)
    codec = AvroCodec.from_settings()
    try:
        with running_pipeline(
            kafka_config, prefix, tmp_path_factory.mktemp("quarantine"), workers=2
        ) as pipeline:
            pipeline.wait_until_assigned(PARTITIONS)
            events = store_events("store-003", RELEASED_STORE, 0)
            events += store_events("store-007", BLOCKED_STORE, 100_000)
            publish_events(kafka_config, pipeline.topics, events, codec)
            pipeline.wait_drained()
            apart = {
                store: {profile_of(pipeline, email(store, n))["profile_id"] for n in range(5)}
                for store in ("store-003", "store-007")
            }

            def both_listed() -> list[dict[str, Any]] | None:
                items = listed(pipeline, 1)
                return items if len(items) == 2 else None

            quarantined = until(both_listed, "both store phones listed")
            by_store = {item["sources"][0].split("-till")[0]: item for item in quarantined}
            api = pipeline.workers[1].url
            cli_list = omnid_cli(pipeline, "list", "--api", api)
            release = omnid_cli(
                pipeline, "release", by_store["store-003"]["id"], "--api", api, "--wait", "60"
            )
            block = send_json(
                "POST",
                f"{pipeline.workers[0].url}/v1/quarantine/block?wait=60",
                {"type": BLOCKED_STORE[0], "value": BLOCKED_STORE[1]},
                pipeline.api_token,
            )
            pipeline.wait_drained()
            # After the reviews, a sixth customer at each store's till.
            late = [
                # A card, not an email: the holder may already hold the five others' emails.
                event(
                    "store-003-till-late",
                    305_000,
                    "pos",
                    "store-003-till-1",
                    LATE_CARD,
                    RELEASED_STORE,
                ),
                event("store-007-web-late", 300_000, "web", "webshop", email("store-007", 9)),
                event(
                    "store-007-till-late",
                    305_000,
                    "pos",
                    "store-007-till-1",
                    email("store-007", 9),
                    BLOCKED_STORE,
                ),
            ]
            publish_events(kafka_config, pipeline.topics, late, codec)
            pipeline.wait_drained()
            again = send_json(
                "POST",
                f"{api}/v1/quarantine/release?wait=30",
                {"id": by_store["store-003"]["id"]},
                pipeline.api_token,
            )
            yield QuarantineRun(
                pipeline, quarantined, by_store, apart, cli_list, release, block, again
            )
    finally:
        delete_topics(kafka_config, spec.names(prefix).values())


def test_a_store_phone_typed_for_many_customers_is_quarantined_and_their_profiles_come_apart(
    run: QuarantineRun,
) -> None:
    for store, profiles in run.apart.items():
        assert len(profiles) == CUSTOMERS, (store, run.pipeline.logs())
    changes = [
        AvroCodec.from_settings().decode(value).record
        for _key, value, _headers in read_topic(
            run.pipeline.config, run.pipeline.topics.identity_changelog
        )
        if value is not None
    ]
    quarantines = [c for c in changes if c["kind"] == "quarantined"]
    assert sorted(c["identifiers"][0]["value"] for c in quarantines) == [
        "+441134960003",
        "+441134960007",
    ]
    assert all(c["reason"].endswith(":phone") for c in quarantines)  # which type's threshold
    undone = [c for c in changes if c["kind"] == "split" and c["reason"].startswith("quarantine")]
    assert undone, "the customers glued on were split off again"


def test_the_review_lists_since_when_how_many_and_where_and_no_value_in_the_clear(
    run: QuarantineRun,
) -> None:
    assert len(run.quarantined) == 2
    for item in run.quarantined:
        assert item["type"] == "phone" and item["value_masked"].startswith("+44")
        assert item["claimants"] >= 4 and item["channels"] == ["pos"]
        assert item["sources"][0] in ("store-003-till-1", "store-007-till-1")
        assert item["since"] >= BASE
    text = json.dumps(run.quarantined)
    assert "4960003" not in text and "4960007" not in text and "inbox.example" not in text
    # Either worker answers for every partition.
    assert {i["id"] for i in listed(run.pipeline, 0)} <= {i["id"] for i in run.quarantined}


def test_omnid_quarantine_list_prints_the_items_masked(run: QuarantineRun) -> None:
    assert run.cli_list.returncode == 0, run.cli_list
    lines = run.cli_list.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "type", "value"]
    assert len(lines) == 3 and "store-003-till-1" in run.cli_list.stdout
    assert "4960003" not in run.cli_list.stdout


def test_release_lets_the_value_link_again_and_its_merges_follow(run: QuarantineRun) -> None:
    assert run.release.returncode == 0, run.release
    assert '"status": "done"' in run.release.stdout
    holder = profile_of(run.pipeline, RELEASED_STORE)
    rejoined = [
        n
        for n in range(5)
        if profile_of(run.pipeline, email("store-003", n))["profile_id"] == holder["profile_id"]
    ]
    # Its merges follow from the recorded claims: all five are one profile again.
    assert rejoined == list(range(CUSTOMERS)), holder
    # And it links again: a new walk-in with the store's number joins the holder.
    assert profile_of(run.pipeline, LATE_CARD)["profile_id"] == holder["profile_id"]
    released = run.by_store["store-003"]["id"]
    until(
        lambda: all(i["id"] != released for i in listed(run.pipeline, 1)),
        "the released phone leaves the list",
    )
    # Released once, it is not quarantined any more: a second release has nothing to act on.
    body, status = run.again
    assert status == 404 and body["error"] == "not_quarantined", body


def test_block_keeps_the_value_out_for_good(run: QuarantineRun) -> None:
    body, status = run.block
    assert status == 200 and body["status"] == "done", body
    assert body["changes"][0]["kind"] == "quarantine_blocked"
    blocked = run.by_store["store-007"]["id"]
    until(
        lambda: all(i["id"] != blocked for i in listed(run.pipeline, 0)),
        "the blocked phone leaves the list",
    )
    customers = {profile_of(run.pipeline, email("store-007", n))["profile_id"] for n in range(5)}
    assert customers == run.apart["store-007"], "the five stay apart"
    late = profile_of(run.pipeline, email("store-007", 9))
    assert late["profile_id"] not in customers
    assert "+441134960007" not in {i["value"] for i in late["identifiers"]}
    body, status = lookup(run.pipeline, 1, BLOCKED_STORE)
    assert (status, body["error"]) == (404, "blocked_identifier"), body
