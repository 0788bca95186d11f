"""A worker SIGKILLed mid-stream and restarted on an empty disk: once the stream drains, no event
is lost or counted twice, and the restarted worker's tables came back from their changelogs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.testing.oracle import signatures, simulated_profiles, totals
from omnid.testing.topic_io import latest_profiles, publish_events, undelivered
from omnid.testing.workers import running_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

PARTITIONS = 6
# No shared store tablets or generic values: a tablet's device id hits the per-profile limits,
# and which profile gets it first depends on arrival order by design. Without them the final
# profiles do not depend on delivery order (checked over many simulator seeds), so one oracle
# run is exact.
SPEC = WorkloadSpec(customers=60, events=1200, seed=9).without_shared_values()


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_sigkilled_worker_restarted_on_an_empty_disk_loses_and_double_counts_nothing(
    kafka_config: dict[str, str], topology: Any, tmp_path: Path, guarantee: str
) -> None:
    records = list(channel_events(SPEC))
    thirds = [records[: len(records) // 3], records[len(records) // 3 : 2 * len(records) // 3]]
    thirds.append(records[2 * len(records) // 3 :])
    with running_pipeline(kafka_config, topology.prefix, tmp_path, 2, guarantee) as pipeline:
        pipeline.wait_until_assigned(PARTITIONS)
        victim = pipeline.workers[1]
        publish_events(kafka_config, pipeline.topics, thirds[0])
        # Both workers have written profile state, so every changelog the restarted worker
        # may be given holds something to restore.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            (w.status() or {}).get("table_sizes", {}).get("profiles", 0) > 0
            for w in pipeline.workers
        ):
            time.sleep(0.2)
        publish_events(kafka_config, pipeline.topics, thirds[1])
        # The precondition that makes this a mid-stream crash: work is still in flight.
        assert undelivered(kafka_config, pipeline.group, pipeline.topics.inputs) > 0
        victim.kill()
        publish_events(kafka_config, pipeline.topics, thirds[2])

        restarted = pipeline.add_worker(
            victim.name, guarantee, data_dir=tmp_path / "rocksdb-after-crash"
        )
        pipeline.wait_until_assigned(PARTITIONS, timeout=180)
        pipeline.wait_drained(timeout=300)
        # The dead member may leave the group only now: read the status of a settled group.
        pipeline.wait_until_assigned(PARTITIONS, timeout=180)

        status = restarted.status()
        assert status is not None, pipeline.logs()
        # Its disk was empty: every entry it holds was read back from a changelog topic, by a
        # restore or by its standby replicas (which may have read a partition before it was
        # given to the worker).
        restored = status["restored_records"]
        assert restored["identifiers"] + restored["profiles"] + status["standby_records"] > 0
        assert status["table_sizes"]["profiles"] > 0
        published = latest_profiles(kafka_config, pipeline.topics)

    expected = simulated_profiles(records, PARTITIONS, seed=3)
    assert totals(published.values()) == totals(expected), pipeline.logs()
    assert signatures(published.values()) == signatures(expected)
