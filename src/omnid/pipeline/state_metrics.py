"""The worker's state metrics: its RocksDB tables' size on disk, how long restoring them from
their changelogs took, and the active profiles among the partitions it owns. Tables are labelled
by `kafka.stages.Table`."""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

from omnid.kafka.stages import Table

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

    def set_rocksdb_size(self, table: Table, size_bytes: int) -> None:
        self.rocksdb_size.labels(table=table.value).set(size_bytes)


@cache
def state_metrics() -> StateMetrics:
    """This process's state metrics, on the registry `observability.metrics.render` exposes."""
    return StateMetrics(REGISTRY)
