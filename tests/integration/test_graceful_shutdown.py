"""SIGTERM mid-stream: the worker finishes (or aborts) its batch, commits, leaves the group and
exits cleanly on its own, well inside its shutdown grace; the other worker takes over and no
event is lost or counted twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.testing.oracle import simulated_profiles, totals
from omnid.testing.topic_io import latest_profiles, publish_events, undelivered
from omnid.testing.workers import running_pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

PARTITIONS = 6
SPEC = WorkloadSpec(customers=40, events=600, seed=5).without_shared_values()


def test_sigterm_mid_stream_stops_cleanly_and_loses_nothing(
    kafka_config: dict[str, str], topology: Any, tmp_path: Path
) -> None:
    records = list(channel_events(SPEC))
    with running_pipeline(kafka_config, topology.prefix, tmp_path, 2) as pipeline:
        pipeline.wait_until_assigned(PARTITIONS)
        leaving = pipeline.workers[1]
        publish_events(kafka_config, pipeline.topics, records)
        assert undelivered(kafka_config, pipeline.group, pipeline.topics.inputs) > 0
        assert leaving.process is not None
        leaving.process.terminate()
        # Exit code 0 means it stopped by itself: past its grace it exits with 1.
        assert leaving.process.wait(60) == 0, pipeline.logs()
        log = leaving.log_path.read_text() if leaving.log_path else ""
        assert "SIGTERM: finishing the open batch" in log
        assert "left the group" in log
        pipeline.wait_until_assigned(PARTITIONS)
        pipeline.wait_drained()
        published = latest_profiles(kafka_config, pipeline.topics)

    expected = simulated_profiles(records, PARTITIONS, seed=3)
    assert totals(published.values()) == totals(expected), pipeline.logs()
