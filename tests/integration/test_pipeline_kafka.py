"""Two worker processes on a real broker turn an omnichannel scenario into the same profiles
the in-memory runner computes, serve them through the lookup API from either worker, and
dead-letter poison messages without stopping."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.config import Settings
from omnid.contracts import CHANNEL_EVENT, AvroCodec, new_channel_event
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.kafka.topology import prefixed_name
from omnid.testing.oracle import profile_signature, signatures, simulated_profiles, totals
from omnid.testing.topic_io import latest_profiles, publish_events, read_topic
from omnid.testing.workers import Pipeline, get_json, running_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

PARTITIONS = 6
# No shared store tablets or generic values: which profile gets a tablet's device id first
# depends on arrival order by design (limits), so only without them is one in-memory run an
# exact oracle.
SPEC = WorkloadSpec(customers=40, events=500, seed=5).without_shared_values()


def poison_messages(codec: AvroCodec) -> list[tuple[bytes, str]]:
    """(bytes, expected dead-letter reason) for each kind of bad input."""
    no_identifiers = new_channel_event(
        event_id="poison-no-identifiers",
        channel="web",
        source="test",
        event_type="track",
        identifiers=[],
        occurred_at=1_709_251_200_000,
        received_at=1_709_251_200_000,
    )
    only_junk = {**no_identifiers, "event_id": "poison-junk", "identifiers": [
        {"type": "email", "value": "test@test.com"}
    ]}  # fmt: skip
    wrong_schema = codec.encode(
        "omnid.IdentityChange",
        {
            "change_id": "c1",
            "kind": "merged",
            "profile_id": "P",
            "other_profile_id": None,
            "identifiers": [],
            "event_id": None,
            "reason": None,
            "at": 1_709_251_200_000,
        },
    )
    return [
        (b"\x00\x01 definitely not avro", "undecodable"),
        (b"", "undecodable"),
        (wrong_schema, "schema_invalid"),
        (codec.encode(CHANNEL_EVENT, no_identifiers), "no_identifier"),
        (codec.encode(CHANNEL_EVENT, only_junk), "no_identifier"),
    ]


@dataclass
class ScenarioRun:
    pipeline: Pipeline
    records: list[dict[str, Any]]
    poison: list[tuple[bytes, str]]
    published: dict[str, dict[str, Any]]
    tombstoned: set[str]
    dead_letters: list[tuple[str, bytes | None, dict[str, str]]]
    statuses: list[dict[str, Any]]


@pytest.fixture(scope="module")
def scenario(
    kafka_config: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScenarioRun]:
    """One run shared by the tests below: topology, two workers, good events with poison in
    the middle, drained."""
    prefix = f"test-pipe-{uuid.uuid4().hex[:8]}"
    spec = load_topology(Settings().topics_file)
    apply_topics(kafka_config, spec, prefix)
    codec = AvroCodec.from_settings()
    records = list(channel_events(SPEC))
    poison = poison_messages(codec)
    base_dir: Path = tmp_path_factory.mktemp("pipeline")
    try:
        with running_pipeline(kafka_config, prefix, base_dir, workers=2) as pipeline:
            pipeline.wait_until_assigned(PARTITIONS)
            half = len(records) // 2
            publish_events(kafka_config, pipeline.topics, records[:half], codec)
            from confluent_kafka import Producer

            producer = Producer(kafka_config)
            for payload, _reason in poison:
                producer.produce(prefixed_name(prefix, "omnid.events.web"), value=payload)
            producer.flush(30)
            publish_events(kafka_config, pipeline.topics, records[half:], codec)
            pipeline.wait_drained()
            raw = read_topic(kafka_config, pipeline.topics.profile_updates)
            last: dict[str, bytes | None] = {}
            for key, value, _headers in raw:
                last[key] = value
            yield ScenarioRun(
                pipeline=pipeline,
                records=records,
                poison=poison,
                published=latest_profiles(kafka_config, pipeline.topics, codec),
                tombstoned={key for key, value in last.items() if value is None},
                dead_letters=[
                    (k, v, {h: (b or b"").decode() for h, b in headers})
                    for k, v, headers in read_topic(kafka_config, pipeline.topics.dead_letter)
                ],
                statuses=[w.status() or {} for w in pipeline.workers],
            )
    finally:
        delete_topics(kafka_config, spec.names(prefix).values())


def test_final_profiles_on_the_updates_topic_equal_the_in_memory_runner(
    scenario: ScenarioRun,
) -> None:
    expected = signatures(simulated_profiles(scenario.records, PARTITIONS, seed=11))
    assert len(expected) > 10
    assert signatures(scenario.published.values()) == expected, scenario.pipeline.logs()


def test_every_valid_event_and_order_is_counted_exactly_once(scenario: ScenarioRun) -> None:
    assert totals(scenario.published.values()) == totals(
        simulated_profiles(scenario.records, PARTITIONS, seed=11)
    )


def test_both_workers_processed_with_their_own_rocksdb_folders(scenario: ScenarioRun) -> None:
    folders = [w.data_dir for w in scenario.pipeline.workers]
    assert len(set(folders)) == 2
    for folder, status in zip(folders, scenario.statuses, strict=True):
        assert status["processed"] > 0
        assert (folder / "identifiers").is_dir() and (folder / "profiles").is_dir()
        assert status["table_sizes"]["profiles"] > 0


def test_lookup_api_on_either_worker_returns_the_published_profile(
    scenario: ScenarioRun,
) -> None:
    workers = scenario.pipeline.workers
    token = scenario.pipeline.api_token
    for index, (profile_id, record) in enumerate(sorted(scenario.published.items())):
        api = workers[index % len(workers)].url
        body, status = get_json(f"{api}/v1/profiles/{profile_id}", token=token)
        assert status == 200, body
        assert body["profile_id"] == profile_id
        assert profile_signature(body) == profile_signature(record)
        held = record["identifiers"][index % len(record["identifiers"])]
        body, status = get_json(
            f"{api}/v1/identifiers/{held['type']}/{quote(held['value'], safe='')}",
            token=token,
        )
        assert status == 200, body
        assert body["profile_id"] == profile_id


def test_lookup_of_a_merged_profile_id_answers_with_the_survivor(scenario: ScenarioRun) -> None:
    merged = sorted(scenario.tombstoned)
    assert merged, "the scenario should merge some profiles"
    api = scenario.pipeline.workers[0].url
    token = scenario.pipeline.api_token
    for profile_id in merged:
        body, status = get_json(f"{api}/v1/profiles/{profile_id}", token=token)
        assert status == 200, body
        assert body["profile_id"] in scenario.published
        assert body["requested_profile_id"] == profile_id


def test_lookup_of_unknown_keys_is_404_and_of_invalid_identifiers_400(
    scenario: ScenarioRun,
) -> None:
    api = scenario.pipeline.workers[1].url
    token = scenario.pipeline.api_token
    body, status = get_json(
        f"{api}/v1/identifiers/email/zed.unknown.999%40inbox.example", token=token
    )
    assert (status, body["error"]) == (404, "unknown_identifier")
    body, status = get_json(f"{api}/v1/profiles/00000000000000000000000000", token=token)
    assert (status, body["error"]) == (404, "unknown_profile")
    body, status = get_json(f"{api}/v1/identifiers/shoe_size/42", token=token)
    assert (status, body["error"]) == (400, "invalid_identifier")
    # Normalised before lookup: case and spaces do not matter for an email.
    email = next(
        i for r in scenario.published.values() for i in r["identifiers"] if i["type"] == "email"
    )
    shouted = quote(f"  {email['value'].upper()} ", safe="")
    body, status = get_json(f"{api}/v1/identifiers/email/{shouted}", token=token)
    assert status == 200, body


def test_lookup_needs_a_bearer_token_even_for_a_key_held_by_the_other_worker(
    scenario: ScenarioRun,
) -> None:
    profile_id = sorted(scenario.published)[0]
    for worker in scenario.pipeline.workers:
        body, status = get_json(f"{worker.url}/v1/profiles/{profile_id}")
        assert (status, body["error"]) == (401, "unauthorized")
        body, status = get_json(f"{worker.url}/v1/profiles/{profile_id}", token="omnid_wrong")
        assert (status, body["error"]) == (401, "unauthorized")


def test_poison_messages_reach_the_dead_letter_topic_with_reasons(scenario: ScenarioRun) -> None:
    poison_values = {payload: reason for payload, reason in scenario.poison}
    seen = {
        value: headers
        for _key, value, headers in scenario.dead_letters
        if value is not None and value in poison_values
    }
    assert set(seen) == set(poison_values)
    for value, headers in seen.items():
        assert headers["reason"] == poison_values[value]
        assert headers["source_topic"].endswith("omnid.events.web")
        assert int(headers["source_offset"]) >= 0
        assert headers["detail"]
