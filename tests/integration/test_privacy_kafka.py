"""Erasure on the real broker with two workers: through the HTTP API, a completed receipt,
`erased` 404s from either worker, tombstones for every id of the person, nothing of the person
left in the compacted state changelogs, and a re-publication of their events recreates nothing."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from omnid.api_auth import bearer_header
from omnid.config import Settings
from omnid.contracts import AvroCodec, new_channel_event
from omnid.kafka.stages import Table
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.testing.topic_io import latest_profiles, publish_events, read_topic
from omnid.testing.workers import Pipeline, get_json, running_pipeline

pytestmark = pytest.mark.kafka

PARTITIONS = 6
ANN_IDENTIFIERS = [
    ("email", "ann.erasable@inbox.example"),
    ("phone", "+447911123457"),
    ("user_id", "ann-erasable-1"),
    ("loyalty_id", "LOY-ANN-777"),
]
ANN_TRAIT = "Annabel Erasable"
BOB_IDENTIFIERS = [("email", "bob.keeps@inbox.example"), ("user_id", "bob-keeps-1")]
# Compaction needs closed segments: roll them every second and clean at once; tombstones are
# kept for a second only, so the person's clear keys leave the changelogs too.
COMPACT_NOW = {
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "1000",
}


def events() -> list[dict[str, Any]]:
    """Ann in two profiles (web: email + user id; pos: phone + loyalty card) that a later
    email + phone event merges; Bob alone."""
    base = 1_790_000_000_000
    return [
        new_channel_event(
            event_id="ann-1",
            channel="web",
            source="web-shop",
            event_type="identify",
            identifiers=[ANN_IDENTIFIERS[0], ANN_IDENTIFIERS[2]],
            occurred_at=base,
            received_at=base,
            traits={"name": ANN_TRAIT},
        ),
        new_channel_event(
            event_id="ann-2",
            channel="pos",
            source="till",
            event_type="purchase",
            identifiers=[ANN_IDENTIFIERS[1], ANN_IDENTIFIERS[3]],
            occurred_at=base + 1000,
            received_at=base + 1000,
            purchase={"order_id": "ord-ann-1", "amount": 12.5, "currency": "GBP"},
        ),
        new_channel_event(
            event_id="ann-3",
            channel="crm",
            source="crm",
            event_type="identify",
            identifiers=[ANN_IDENTIFIERS[0], ANN_IDENTIFIERS[1]],
            occurred_at=base + 2000,
            received_at=base + 2000,
        ),
        new_channel_event(
            event_id="bob-1",
            channel="web",
            source="web-shop",
            event_type="identify",
            identifiers=BOB_IDENTIFIERS,
            occurred_at=base,
            received_at=base,
            traits={"name": "Bob Keeps"},
        ),
    ]


def post_json(url: str, body: dict[str, Any], token: str) -> tuple[dict[str, Any], int]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={**bearer_header(token), "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response), response.status


def identifier_url(api: str, identifier: tuple[str, str]) -> str:
    return f"{api}/v1/identifiers/{identifier[0]}/{quote(identifier[1], safe='')}"


@dataclass
class ErasedRun:
    pipeline: Pipeline
    person_ids: set[str]
    receipt: dict[str, Any]
    bob_id: str


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def erased(
    kafka_config: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ErasedRun]:
    prefix = f"test-privacy-{uuid.uuid4().hex[:8]}"
    spec = load_topology(Settings().topics_file)
    apply_topics(kafka_config, spec, prefix)
    codec = AvroCodec.from_settings()
    base_dir: Path = tmp_path_factory.mktemp("privacy")
    try:
        with running_pipeline(kafka_config, prefix, base_dir, workers=2) as pipeline:
            pipeline.wait_until_assigned(PARTITIONS)
            compact_state_changelogs_eagerly(kafka_config, pipeline)
            first, linking = [e for e in events() if e["event_id"] != "ann-3"], events()[2:3]
            publish_events(kafka_config, pipeline.topics, first, codec)
            pipeline.wait_drained()  # two profiles of Ann, then the event that merges them
            publish_events(kafka_config, pipeline.topics, linking, codec)
            pipeline.wait_drained()
            token = pipeline.api_token
            ann, status = get_json(
                identifier_url(pipeline.workers[0].url, ANN_IDENTIFIERS[3]), token=token
            )
            assert status == 200, ann
            person_ids = {ann["profile_id"], *ann["merged_from"]}
            assert len(person_ids) == 2, ann
            bob, status = get_json(
                identifier_url(pipeline.workers[1].url, BOB_IDENTIFIERS[0]), token=token
            )
            assert status == 200, bob
            submitted, status = post_json(
                f"{pipeline.workers[0].url}/v1/privacy/requests",
                {"kind": "erase", "subject": {"type": "user_id", "value": "ann-erasable-1"}},
                token,
            )
            assert status == 202 and submitted["status"] == "submitted"

            def completed() -> dict[str, Any] | None:
                body, code = get_json(
                    f"{pipeline.workers[1].url}{submitted['status_url']}", token=token
                )
                return body if code == 200 and body and body["status"] == "completed" else None

            receipt = wait_for(completed, 120, "no completed receipt")
            pipeline.wait_drained()
            yield ErasedRun(pipeline, person_ids, receipt, bob["profile_id"])
    finally:
        delete_topics(kafka_config, spec.names(prefix).values())


def compact_state_changelogs_eagerly(config: dict[str, str], pipeline: Pipeline) -> None:
    admin = AdminClient(config)
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            pipeline.topics.state_changelog(table),
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in COMPACT_NOW.items()
            ],
        )
        for table in Table
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(30)


def test_the_receipt_says_completed_with_counts_and_no_personal_data(erased: ErasedRun) -> None:
    receipt = erased.receipt
    assert receipt["counts"] == {
        "identifiers_suppressed": 4,
        "profiles_erased": 2,
        "records_removed": 6,
    }
    assert [r["status"] for r in receipt["receipts"]] == ["accepted", "completed"]
    assert receipt["receipts"][0]["requested_by"] == "test-pipeline"
    text = json.dumps(receipt)
    assert not [value for _t, value in ANN_IDENTIFIERS if value in text] and ANN_TRAIT not in text


def test_every_identifier_of_the_person_answers_erased_from_either_worker(
    erased: ErasedRun,
) -> None:
    token = erased.pipeline.api_token
    for worker in erased.pipeline.workers:
        for identifier in ANN_IDENTIFIERS:
            body, status = get_json(identifier_url(worker.url, identifier), token=token)
            assert (status, body["error"]) == (404, "erased_identifier"), (worker.name, body)
        for profile_id in erased.person_ids:
            body, status = get_json(f"{worker.url}/v1/profiles/{profile_id}", token=token)
            assert (status, body["error"]) == (404, "erased_profile"), body
        body, status = get_json(identifier_url(worker.url, BOB_IDENTIFIERS[1]), token=token)
        assert status == 200 and body["traits"]["name"]["value"] == "Bob Keeps"


def test_every_id_of_the_person_ends_in_a_tombstone_on_the_profile_updates(
    kafka_config: dict[str, str], erased: ErasedRun
) -> None:
    last: dict[str, bytes | None] = {}
    for key, value, _headers in read_topic(kafka_config, erased.pipeline.topics.profile_updates):
        last[key] = value
    for profile_id in erased.person_ids:
        assert profile_id in last and last[profile_id] is None, profile_id
    assert last[erased.bob_id] is not None


def test_republishing_the_persons_events_recreates_nothing_and_dead_letters_nothing(
    kafka_config: dict[str, str], erased: ErasedRun
) -> None:
    pipeline = erased.pipeline
    publish_events(kafka_config, pipeline.topics, events())
    pipeline.wait_drained()
    for worker in pipeline.workers:
        for identifier in ANN_IDENTIFIERS:
            body, status = get_json(
                identifier_url(worker.url, identifier), token=pipeline.api_token
            )
            assert (status, body["error"]) == (404, "erased_identifier"), body
    profiles = latest_profiles(kafka_config, pipeline.topics)
    shown = json.dumps(profiles, default=str)
    assert not [value for _t, value in ANN_IDENTIFIERS if value in shown]
    assert ANN_TRAIT not in shown and erased.bob_id in profiles
    # Events left with nothing usable are counted and dropped, never dead-lettered.
    dead = b"".join(
        value or b"" for _k, value, _h in read_topic(kafka_config, pipeline.topics.dead_letter)
    )
    assert not [value for _t, value in ANN_IDENTIFIERS if value.encode() in dead]


def test_after_compaction_the_state_changelogs_hold_nothing_of_the_person(
    kafka_config: dict[str, str], erased: ErasedRun
) -> None:
    pipeline = erased.pipeline
    person = [f"{t}:{v}".encode() for t, v in ANN_IDENTIFIERS]
    person += [v.encode() for _t, v in ANN_IDENTIFIERS] + [ANN_TRAIT.encode()]
    producer = Producer(kafka_config)
    topics = [pipeline.topics.state_changelog(table) for table in Table]

    def leftovers() -> list[str]:
        # New records roll the active segment, so the erased data lies in cleanable ones.
        for topic in topics:
            for partition in range(PARTITIONS):
                producer.produce(topic, key=b"~compaction-filler", value=b"", partition=partition)
        producer.flush(30)
        found = []
        for topic in topics:
            for key, value, _headers in read_topic(kafka_config, topic, idle_s=1.0):
                blob = key.encode() + (value or b"")
                found.extend(f"{topic}: {p.decode()}" for p in person if p in blob)
        return found

    deadline = time.monotonic() + 240
    remaining = leftovers()
    while remaining and time.monotonic() < deadline:
        time.sleep(3)
        remaining = leftovers()
    assert remaining == [], "the log cleaner left the person in the state changelogs"
    bob_keys = [key for key, _v, _h in read_topic(kafka_config, topics[0]) if "bob" in key]
    assert bob_keys, "other people's state is kept"
