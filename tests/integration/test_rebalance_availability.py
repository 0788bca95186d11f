"""A third worker joins while lookups run: every key whose partitions keep their owner answers
200 throughout, and fresh — with the consumer group protocol (KIP-848) a partition that does not
move is never revoked, so it never pauses — and the group ends with every partition owned once.
Keys that move answer 200 too: stale, from a standby or a copy left behind, until their new
owner has restored them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.pipeline.partitioning import partition_for
from omnid.testing.availability import LookupPoller
from omnid.testing.topic_io import latest_profiles, publish_events
from omnid.testing.workers import running_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

PARTITIONS = 6
SPEC = WorkloadSpec(customers=40, events=400, seed=5).without_shared_values()


def test_a_joining_worker_leaves_lookups_of_keys_that_do_not_move_answering(
    kafka_config: dict[str, str], topology: Any, tmp_path: Path
) -> None:
    records = list(channel_events(SPEC))
    with running_pipeline(kafka_config, topology.prefix, tmp_path, 2) as pipeline:
        pipeline.wait_until_assigned(PARTITIONS)
        publish_events(kafka_config, pipeline.topics, records)
        pipeline.wait_drained()
        topics = pipeline.topics
        before = pipeline.owners()
        urls = {worker.name: worker.url for worker in pipeline.workers}
        # Each key: one identifier of a profile, asked of the worker owning its partition;
        # the answer also needs the partition of the profile it resolves to.
        keys: dict[str, tuple[str, str]] = {}
        # Every profile, not the first few: the topic is read partition by partition, so a prefix
        # holds profiles of a few partitions only, and a join that moves just those (it did, in
        # CI) leaves no key staying. With half the partitions moving, about a quarter stay.
        for profile_id, profile in latest_profiles(kafka_config, topics).items():
            identifier = profile["identifiers"][0]
            key = f"{identifier['type']}:{identifier['value']}"
            held = f"{topics.identity_commands}:{partition_for(key, PARTITIONS)}"
            stored = f"{topics.profile_commands}:{partition_for(profile_id, PARTITIONS)}"
            path = f"/v1/identifiers/{identifier['type']}/{quote(identifier['value'], safe='')}"
            keys[key] = (held, stored)
            urls[key] = f"{urls[before[held]]}{path}"
        with LookupPoller({k: urls[k] for k in keys}, pipeline.api_token) as poller:
            time.sleep(2)
            pipeline.add_worker("worker-3", "exactly_once")
            pipeline.wait_until_assigned(PARTITIONS, timeout=180)
            time.sleep(2)
        after = pipeline.owners()

    staying = [k for k, parts in keys.items() if all(before[p] == after[p] for p in parts)]
    moving = [k for k in keys if k not in staying]
    moved = sorted(p for p in before if before[p] != after.get(p))
    # For the record (pytest -s): what a client saw, per kind of key.
    print(
        f"{len(moved)} of {len(before)} partitions moved;",
        "staying keys", poller.availability(staying), "moving keys", poller.availability(moving),
    )  # fmt: skip
    # The join moved something to worker-3, and left some keys where they were.
    assert "worker-3" in after.values()
    assert staying, (moved, before, after)
    for key in staying:
        statuses = {status for _at, status, _stale in poller.answers[key]}
        assert statuses == {200}, (key, statuses, pipeline.logs())
        assert not any(stale for _at, _status, stale in poller.answers[key]), key
