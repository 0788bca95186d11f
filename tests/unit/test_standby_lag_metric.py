"""omnid_standby_lag_records: one series per table partition stood by for, its changelog
records behind; gone once the worker owns the partition (no stale lag left behind)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from omnid.kafka.stages import Table
from omnid.pipeline.roster import Roster
from omnid.pipeline.standby import StandbyReplicas
from omnid.pipeline.state_metrics import StateMetrics
from omnid.pipeline.state_store import TableStore
from omnid.pipeline.topic_names import PipelineTopics

TOPICS = PipelineTopics.under("lag-test")


class Changelog:
    """The tailing consumer's view of the changelog ends (all the standby asks of it here)."""

    def __init__(self, ends: dict[tuple[str, int], int]) -> None:
        self.ends = ends

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return 0, self.ends[(tp.topic, tp.partition)]


def test_the_lag_of_each_standby_partition_is_a_series_until_the_partition_is_owned(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    stores = {table: TableStore(tmp_path / table.value) for table in Table}
    roster = Roster({}, TOPICS.worker_roster(), "g", "w1", "http://w1")
    standby = StandbyReplicas({}, "g", "w1", stores, TOPICS, 1, roster, StateMetrics(registry))
    profiles = TOPICS.state_changelog(Table.PROFILES)
    standby._wanted = {(profiles, 2), (profiles, 3)}
    standby._apply(
        Changelog({(profiles, 2): 40, (profiles, 3): 7}),  # type: ignore[arg-type]
        [],
        [TopicPartition(profiles, 2, 25), TopicPartition(profiles, 3, 7)],
    )

    def lag(partition: str) -> float | None:
        labels = {"table": "profiles", "partition": partition}
        return registry.get_sample_value("omnid_standby_lag_records", labels)

    assert (lag("2"), lag("3")) == (15, 0)
    assert standby.lag(Table.PROFILES, 2) == 15
    standby.own([(Table.PROFILES, 2)])
    assert lag("2") is None and standby.lag(Table.PROFILES, 2) is None
    assert lag("3") == 0
    for store in stores.values():
        store.close()
