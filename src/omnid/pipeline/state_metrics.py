"""The worker's state metrics: its RocksDB tables' size on disk, how long restoring them from
their changelogs took, the active profiles among the partitions it owns, and how far its standby
replicas are behind. Tables are labelled by `kafka.stages.Table`."""

from __future__ import annotations

from contextlib import suppress
from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

from omnid.kafka.stages import Table
from omnid.pipeline.runtime_metrics import partition_label

RECOVERY_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class StateMetrics:
    """The state's metric objects, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.active_profiles = Gauge(
            "omnid_active_profiles",
            "Active profiles in the partitions this worker owns (sum over workers for the total).",
            registry=registry,
        )
        self.rocksdb_size = Gauge(
            "omnid_rocksdb_size_bytes",
            "Bytes on disk of a RocksDB table on this worker, by table.",
            ["table"],
            registry=registry,
        )
        self.table_recovery = Histogram(
            "omnid_table_recovery_seconds",
            "Time to rebuild tables from their changelogs after a rebalance.",
            buckets=RECOVERY_BUCKETS,
            registry=registry,
        )

        self.standby_lag = Gauge(
            "omnid_standby_lag_records",
            "Changelog records (and transaction markers) a standby replica on this worker is "
            "behind, by table and partition; a series per partition stood by for.",
            ["table", "partition"],
            registry=registry,
        )

    def set_rocksdb_size(self, table: Table, size_bytes: int) -> None:
        self.rocksdb_size.labels(table=table.value).set(size_bytes)

    def set_standby_lag(self, table: Table, partition: int, lag: int) -> None:
        self.standby_lag.labels(table=table.value, partition=partition_label(partition)).set(lag)

    def forget_standby_lag(self, table: Table, partition: int) -> None:
        """Drops the series of a partition no longer stood by for (owned now, or moved)."""
        with suppress(KeyError):
            self.standby_lag.remove(table.value, partition_label(partition))


@cache
def state_metrics() -> StateMetrics:
    """This process's state metrics, on the registry `observability.metrics.render` exposes."""
    return StateMetrics(REGISTRY)
