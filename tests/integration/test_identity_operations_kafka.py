"""Identity operations on the real broker with two workers: a family sharing a loyalty card is
split through the API; lookups of both sides answer on either worker; the ban holds when an
event with identifiers of both sides arrives; explain answers on either worker; the split, the
ban refusal and a manual merge refused by a limit are on the identity changelog with the
operator's name."""

from __future__ import annotations

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

pytestmark = pytest.mark.kafka

PARTITIONS = 6
BASE = 1_790_000_000_000
CARD = ("loyalty_id", "FAM-4242")
MUM = ("email", "mum.family@inbox.example")
DAD = ("email", "dad.family@inbox.example")
OTHER = [("user_id", "someone-else-1"), ("user_id", "someone-else-2")]


def event(event_id: str, at: int, *identifiers: tuple[str, str], **traits: str) -> dict[str, Any]:
    return new_channel_event(
        event_id=event_id,
        channel="pos",
        source="till-9",
        event_type="identify",
        identifiers=list(identifiers),
        occurred_at=BASE + at,
        received_at=BASE + at,
        traits=traits,
    )


def lookup(pipeline: Pipeline, worker: int, identifier: tuple[str, str]) -> dict[str, Any]:
    url = f"{pipeline.workers[worker].url}/v1/identifiers/{identifier[0]}/{quote(identifier[1])}"
    body, status = get_json(url, token=pipeline.api_token)
    assert status == 200 and body is not None, body
    return body


@dataclass
class SplitRun:
    pipeline: Pipeline
    split: dict[str, Any]
    merge: tuple[dict[str, Any], int]
    explain_seconds: list[float]


@pytest.fixture(scope="module")
def run(
    kafka_config: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SplitRun]:
    prefix = f"test-identops-{uuid.uuid4().hex[:8]}"
    spec = load_topology(Settings().topics_file)
    apply_topics(kafka_config, spec, prefix)
    codec = AvroCodec.from_settings()
    try:
        with running_pipeline(
            kafka_config, prefix, tmp_path_factory.mktemp("identops"), workers=2
        ) as pipeline:
            pipeline.wait_until_assigned(PARTITIONS)
            publish_events(
                kafka_config,
                pipeline.topics,
                [
                    event("fam-1", 0, CARD, MUM, name="Mum"),
                    event("fam-2", 1000, CARD, DAD, name="Dad"),
                    event("fam-3", 2000, DAD, newsletter="weekly"),
                    event("other-1", 0, OTHER[0]),
                    event("other-2", 0, OTHER[1]),
                ],
                codec,
            )
            pipeline.wait_drained()
            token = pipeline.api_token
            family = lookup(pipeline, 0, MUM)
            assert lookup(pipeline, 1, DAD)["profile_id"] == family["profile_id"]
            split, status = send_json(
                "POST",
                f"{pipeline.workers[1].url}/v1/profiles/{family['profile_id']}/split?wait=60",
                {"identifiers": [{"type": DAD[0], "value": DAD[1]}]},
                token,
            )
            assert status == 200 and split["status"] == "done", split
            pipeline.wait_drained()
            # At the till again with the family card and his email: the card's side takes it.
            publish_events(kafka_config, pipeline.topics, [event("fam-4", 5000, CARD, DAD)], codec)
            pipeline.wait_drained()
            timings = []
            for worker in pipeline.workers * 10:
                started = time.perf_counter()
                body, status = get_json(
                    f"{worker.url}/v1/profiles/{family['profile_id']}/explain", token=token
                )
                timings.append(time.perf_counter() - started)
                assert status == 200, body
            first, second = lookup(pipeline, 0, OTHER[0]), lookup(pipeline, 1, OTHER[1])
            merge = send_json(
                "POST",
                f"{pipeline.workers[0].url}/v1/profiles/merge?wait=60",
                {"profile_ids": [first["profile_id"], second["profile_id"]]},
                token,
            )
            pipeline.wait_drained()
            yield SplitRun(pipeline, split, merge, timings)
    finally:
        delete_topics(kafka_config, spec.names(prefix).values())


def test_split_moves_the_named_identifier_and_its_events_and_both_sides_answer_on_either_worker(
    run: SplitRun,
) -> None:
    (change,) = run.split["changes"]
    old, new = change["profile_id"], change["other_profile_id"]
    assert change["kind"] == "split" and change["operator"] == "test-pipeline"
    for worker in (0, 1):
        mum, dad = lookup(run.pipeline, worker, MUM), lookup(run.pipeline, worker, DAD)
        assert lookup(run.pipeline, worker, CARD)["profile_id"] == mum["profile_id"] == old
        assert dad["profile_id"] == new
        assert [i["value"] for i in dad["identifiers"]] == [DAD[1]]
        assert dad["computed"]["event_count"] == 1  # fam-3 came through his email alone
        assert dad["traits"]["newsletter"]["value"] == "weekly"
        # fam-2 (card + his email) stays with the card; fam-4 came after the split
        assert mum["computed"]["event_count"] == 3
        assert "newsletter" not in mum["traits"]


def test_the_ban_holds_and_explain_answers_with_it_on_either_worker(run: SplitRun) -> None:
    (change,) = run.split["changes"]
    ban_id = change["reason"].removeprefix("ban:")
    for worker in run.pipeline.workers:
        body, status = get_json(
            f"{worker.url}/v1/profiles/{change['profile_id']}/explain"
            f"?from={CARD[0]}:{quote(CARD[1])}&to={MUM[0]}:{quote(MUM[1])}",
            token=run.pipeline.api_token,
        )
        assert status == 200 and body is not None, body
        assert [b["ban_id"] for b in body["bans"]] == [ban_id]
        refused = {
            f"{r['identifier']['type']}:{r['identifier']['value']}": r["reason"]
            for r in body["refused_identifiers"]
        }
        assert refused[f"{DAD[0]}:{DAD[1]}"] == f"ban:{ban_id}"
        (hop,) = body["path"]
        assert hop["kind"] == "event" and hop["event"]["event_id"] == "fam-1"
        assert hop["event"]["channel"] == "pos" and hop["event"]["source"] == "till-9"
    slowest = max(run.explain_seconds) * 1000
    print(f"explain response time, {len(run.explain_seconds)} calls: max {slowest:.1f} ms")


def test_a_manual_merge_over_a_limit_is_refused_with_its_reason(run: SplitRun) -> None:
    body, status = run.merge
    assert status == 409 and body["status"] == "refused", body
    assert body["reason"] == "limit:user_id"
    assert body["changes"][0]["operator"] == "test-pipeline"


def test_the_operations_are_on_the_identity_changelog_with_the_operator(
    kafka_config: dict[str, str], run: SplitRun
) -> None:
    codec = AvroCodec.from_settings()
    changes = [
        codec.decode(value).record
        for _key, value, _headers in read_topic(
            kafka_config, run.pipeline.topics.identity_changelog
        )
        if value is not None
    ]
    by_operator = [c for c in changes if c.get("operator") == "test-pipeline"]
    kinds = sorted(c["kind"] for c in by_operator)
    assert kinds == ["merge_refused", "split"], kinds
    (split,) = [c for c in by_operator if c["kind"] == "split"]
    assert [i["value"] for i in split["identifiers"]] == [DAD[1]]
