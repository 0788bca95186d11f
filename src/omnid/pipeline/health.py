"""Worker health: readiness follows table recovery, and samplers for lag and RocksDB size.

/readyz answers 503 from start-up until the first table recovery completes, and again during
every rebalance until recovery completes, so a load balancer (or a Kubernetes readiness probe)
sends lookups only to a worker whose tables are complete. /healthz stays 200 meanwhile: a
worker recovering a large changelog is alive, and restarting it would only start over.

The worker's runtime calls `rebalance_started()` when its assignment changes and
`recovery_completed()` once every assigned table partition has caught up with its changelog.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from omnid.observability import metrics
from omnid.observability.health import Readiness
from omnid.observability.metrics import Table

TABLES_RECOVERED = "tables_recovered"


class RecoveryTracker:
    """Readiness and recovery timing, from a rebalance (or start-up) to the end of recovery."""

    def __init__(self, readiness: Readiness | None = None) -> None:
        self.readiness = readiness or Readiness()
        metrics.worker_metrics()
        self._recovery_started: float | None = time.monotonic()
        self.readiness.wait_for(TABLES_RECOVERED)
        metrics.set_worker_ready(False)

    def rebalance_started(self) -> None:
        metrics.record_rebalance()
        self.readiness.wait_for(TABLES_RECOVERED)
        metrics.set_worker_ready(False)
        self._recovery_started = time.monotonic()

    def recovery_completed(self) -> None:
        """Idempotent: only the first call after a rebalance observes a recovery time."""
        if self._recovery_started is not None:
            metrics.record_table_recovery(time.monotonic() - self._recovery_started)
            self._recovery_started = None
        self.readiness.satisfied(TABLES_RECOVERED)
        metrics.set_worker_ready(self.readiness.ready)


@dataclass(frozen=True)
class PartitionPosition:
    """Where a consumer stands in one partition: the end offset (next offset to be written) and
    the committed offset (next offset the group will read; None before its first commit)."""

    topic: str
    partition: int
    end_offset: int
    committed_offset: int | None
    start_offset: int = 0

    @property
    def lag(self) -> int:
        next_to_read = self.start_offset if self.committed_offset is None else self.committed_offset
        return max(0, self.end_offset - max(next_to_read, self.start_offset))


def report_consumer_lag(
    positions: Iterable[PartitionPosition], revoked: Iterable[tuple[str, int]] = ()
) -> None:
    """Sets the lag of every owned partition and drops the series of partitions given up."""
    for topic, partition in revoked:
        metrics.forget_consumer_lag(topic, partition)
    for position in positions:
        metrics.set_consumer_lag(position.topic, position.partition, position.lag)


def report_table_sizes(table_dirs: Mapping[Table, Path]) -> None:
    """Each table's RocksDB directory (or the parent of its per-partition directories)."""
    for table, directory in table_dirs.items():
        metrics.set_rocksdb_size(table, metrics.directory_size_bytes(directory))
