"""Worker readiness follows table recovery; lag is computed from offsets as operators read it."""

from __future__ import annotations

import json
from types import SimpleNamespace

from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from omnid.identity import records
from omnid.identity.state import ProfileState, ProfileStatus
from omnid.pipeline.partitioning import partition_for
from omnid.pipeline.worker_health import (
    TABLES_RECOVERED,
    ActiveProfileCounter,
    PartitionPosition,
    RecoveryTracker,
    WorkerOperations,
)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_worker_is_not_ready_until_its_first_recovery_completes() -> None:
    tracker = RecoveryTracker()
    assert tracker.readiness.readyz().status == 503
    assert tracker.readiness.readyz().body["waiting_for"] == [TABLES_RECOVERED]
    assert value("omnid_ready") == 0

    recoveries = value("omnid_table_recovery_seconds_count")
    tracker.recovery_completed()
    tracker.recovery_completed()  # a second signal is not a second recovery

    assert tracker.readiness.readyz().status == 200
    assert value("omnid_ready") == 1
    assert value("omnid_table_recovery_seconds_count") == recoveries + 1


def test_rebalance_makes_the_worker_unready_and_is_counted() -> None:
    tracker = RecoveryTracker()
    tracker.recovery_completed()
    rebalances = value("omnid_rebalances_total")

    tracker.rebalance_started()

    assert tracker.readiness.readyz().status == 503
    assert tracker.readiness.healthz().status == 200
    assert value("omnid_rebalances_total") == rebalances + 1
    tracker.recovery_completed()
    assert tracker.readiness.ready


def test_lag_counts_messages_after_the_committed_offset() -> None:
    assert PartitionPosition("omnid.profile-commands", 0, 120, 100).lag == 20
    assert PartitionPosition("omnid.profile-commands", 0, 120, None).lag == 120
    # Retention deleted the head of the partition: what is gone is not lag.
    assert PartitionPosition("omnid.profile-commands", 0, 120, None, start_offset=100).lag == 20
    assert PartitionPosition("omnid.profile-commands", 0, 120, 120).lag == 0


def test_active_profiles_counts_only_active_ones_in_owned_partitions_a_slice_at_a_time() -> None:
    partitions = 6
    keys = [f"01JPROFILE{i:04d}".encode() for i in range(40)]
    owned = {partition_for(keys[0], partitions), partition_for(keys[1], partitions)}
    entries = [(key, records.encode(ProfileState(key.decode(), created_at=1))) for key in keys]
    merged = ProfileState("01JPROFILE-merged", 1, ProfileStatus.MERGED, merged_into="01J")
    entries.append((keys[0] + b"-merged", records.encode(merged)))
    # a profile stored by the previous (JSON) encoding (here the owned keys[1]) still counts
    entries.append((keys[1], json.dumps({"kind": "ProfileState", "status": "active"}).encode()))
    entries.append((b"\x00checkpoint:3", b"17"))
    table = dict(sorted(entries, key=lambda entry: entry[0]))  # the JSON one replaces keys[1]'s
    expected = sum(1 for key in keys if partition_for(key, partitions) in owned)

    def entries_from(key: bytes | None) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in table.items() if key is None or k >= key]

    counter = ActiveProfileCounter(entries_from, slice_entries=7)
    counter.start(owned, partitions)
    counts = [counter.step() for _ in range(6)]
    # 42 entries, 7 a slice: the sixth slice reads the last of them and ends the pass
    assert counts == [None] * 5 + [expected]
    assert not counter.counting

    counter.start(set(), partitions)
    assert [counter.step() for _ in range(6)] == [None] * 5 + [0]

    counter.start(set(range(partitions)), partitions)  # every partition: no key is hashed
    assert [counter.step() for _ in range(6)] == [None] * 5 + [len(keys)]


class _Consumer:
    """What `WorkerOperations.maybe_sample` asks of a confluent_kafka.Consumer."""

    topic = "omnid.profile-commands"

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, 0)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return partitions

    def get_watermark_offsets(self, _tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, 0

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={0: None})})


def test_the_active_profile_count_reads_a_slice_per_interval_not_per_batch() -> None:
    table = [
        (f"01JPROFILE{i:04d}".encode(), records.encode(ProfileState(f"p{i}", 1)))
        for i in range(1200)
    ]
    slices: list[bytes | None] = []

    def entries_from(key: bytes | None) -> list[tuple[bytes, bytes]]:
        slices.append(key)
        return [(k, v) for k, v in table if key is None or k >= key]

    paced = WorkerOperations({}, entries_from, _Consumer.topic, slice_every_s=3600)
    paced.recovery_completed()
    for _ in range(10):  # ten batches within the interval
        paced.maybe_sample(_Consumer())
    assert len(slices) == 1

    slices.clear()
    unpaced = WorkerOperations({}, entries_from, _Consumer.topic, slice_every_s=0)
    unpaced.recovery_completed()
    for _ in range(10):
        unpaced.maybe_sample(_Consumer())
    assert len(slices) == 3  # 1,200 entries in slices of 500: the pass is over
    assert value("omnid_active_profiles") == 1200
