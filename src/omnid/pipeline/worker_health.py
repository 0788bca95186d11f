"""Worker health: readiness follows table recovery, and samplers for lag and RocksDB size.

/readyz answers 503 from start-up until the first table recovery completes, and again during
every rebalance until recovery completes, so a load balancer (or a Kubernetes readiness probe)
sends lookups only to a worker whose tables are complete. /healthz stays 200 meanwhile: a
worker recovering a large changelog is alive, and restarting it would only start over.

The worker's runtime calls `rebalance_started()` when its assignment changes and
`recovery_completed()` once every assigned table partition has caught up with its changelog.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from omnid.errors import InvalidEvent
from omnid.identity import records
from omnid.identity.state import ProfileStatus
from omnid.kafka.stages import Table
from omnid.observability.health import Readiness
from omnid.pipeline.partitioning import partition_for
from omnid.pipeline.runtime_metrics import runtime_metrics
from omnid.pipeline.state_metrics import state_metrics
from omnid.pipeline.worker_metrics import worker_metrics

TABLES_RECOVERED = "tables_recovered"


class RecoveryTracker:
    """Readiness and recovery timing, from a rebalance (or start-up) to the end of recovery."""

    def __init__(self, readiness: Readiness | None = None) -> None:
        self.readiness = readiness or Readiness()
        worker_metrics()
        self._recovery_started: float | None = time.monotonic()
        self.readiness.wait_for(TABLES_RECOVERED)
        runtime_metrics().ready.set(0)

    def rebalance_started(self) -> None:
        runtime_metrics().rebalances.inc()
        self.readiness.wait_for(TABLES_RECOVERED)
        runtime_metrics().ready.set(0)
        self._recovery_started = time.monotonic()

    def recovery_completed(self) -> None:
        """Idempotent: only the first call after a rebalance observes a recovery time."""
        if self._recovery_started is not None:
            state_metrics().table_recovery.observe(time.monotonic() - self._recovery_started)
            self._recovery_started = None
        self.readiness.satisfied(TABLES_RECOVERED)
        runtime_metrics().ready.set(1 if self.readiness.ready else 0)


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
        runtime_metrics().forget_consumer_lag(topic, partition)
    for position in positions:
        runtime_metrics().set_consumer_lag(position.topic, position.partition, position.lag)


def report_table_sizes(table_dirs: Mapping[Table, Path]) -> None:
    """Each table's RocksDB directory (or the parent of its per-partition directories)."""
    for table, directory in table_dirs.items():
        state_metrics().set_rocksdb_size(table, directory_size_bytes(directory))


def _owned_active(key: bytes, value: bytes, owned_partitions: set[int], partitions: int) -> bool:
    """An active profile's state under a key of an owned partition (a store also keeps
    partitions it owned before a rebalance; checkpoint keys start with a zero byte)."""
    if key.startswith(b"\x00"):
        return False
    # murmur2 in Python is most of an entry's cost; a worker owning every partition skips it.
    if (
        len(owned_partitions) < partitions
        and partition_for(key, partitions) not in owned_partitions
    ):
        return False
    try:
        return records.profile_status(value) is ProfileStatus.ACTIVE
    except InvalidEvent:
        return False


@dataclass
class _CountingPass:
    owned_partitions: set[int]
    partitions: int
    active: int = 0
    last_key: bytes | None = None


class ActiveProfileCounter:
    """Counts active profiles a slice of the profiles table at a time, resuming after the last
    key read: the batch loop's thread does the counting, and walking a large table in one go
    stalled it (some 5 s every 30 s on the graph of a 1,000,000-event run, the p99 of its paced
    phases). `step()` reads at most `slice_entries` entries."""

    def __init__(
        self,
        entries_from: Callable[[bytes | None], Iterable[tuple[bytes, bytes]]],
        slice_entries: int = 500,
    ) -> None:
        self.entries_from = entries_from
        self.slice_entries = slice_entries
        self._pass: _CountingPass | None = None

    @property
    def counting(self) -> bool:
        return self._pass is not None

    def start(self, owned_partitions: set[int], partitions: int) -> None:
        self._pass = _CountingPass(set(owned_partitions), partitions)

    def cancel(self) -> None:
        self._pass = None

    def step(self) -> int | None:
        """Reads the next slice; the count once the pass has read the whole table, else None."""
        counting = self._pass
        if counting is None:
            return None
        read = 0
        for key, value in self.entries_from(counting.last_key):
            if key == counting.last_key:  # a slice starts at the key the previous one ended on
                continue
            if read == self.slice_entries:
                return None
            read += 1
            counting.last_key = key
            if _owned_active(key, value, counting.owned_partitions, counting.partitions):
                counting.active += 1
        self._pass = None
        return counting.active


class WorkerOperations:
    """What a worker's runtime reports besides its processing: readiness and recovery through
    `rebalance_started()` / `recovery_completed()`, and `maybe_sample(consumer)` called from the
    consume loop, which at most every few seconds sets lag and RocksDB sizes, and less often
    starts a count of the active profiles that later calls carry on a slice at a time, at most
    one slice every `slice_every_s`: paced by the clock, not by batches, so on a large table
    (where a pass never ends before the next is due) the count costs the same share of the
    loop whatever the batch rate. Stepped once per batch it read one profile per event on the
    graph of a 1,000,000-event run, 5% of the worker's CPU (py-spy, ~40 us an entry); a slice
    of 500 a second is about 1-2% of a core, and a table of N profiles is counted in N / 500
    seconds."""

    def __init__(
        self,
        table_dirs: Mapping[Table, Path],
        profile_entries: Callable[[bytes | None], Iterable[tuple[bytes, bytes]]],
        profile_commands_topic: str,
        sample_every_s: float = 5.0,
        count_every_s: float = 30.0,
        slice_every_s: float = 1.0,
    ) -> None:
        self.recovery = RecoveryTracker()
        self.table_dirs = dict(table_dirs)
        self.profile_count = ActiveProfileCounter(profile_entries)
        self.profile_commands_topic = profile_commands_topic
        self.sample_every_s = sample_every_s
        self.count_every_s = count_every_s
        self.slice_every_s = slice_every_s
        self._next_slice = 0.0
        self._next_sample = 0.0
        self._next_count = 0.0
        self._lag_series: set[tuple[str, int]] = set()

    @property
    def readiness(self) -> Readiness:
        return self.recovery.readiness

    def rebalance_started(self) -> None:
        self.recovery.rebalance_started()
        # Counted again right after recovery, for the new set of partitions.
        self.profile_count.cancel()
        self._next_count = 0.0

    def recovery_completed(self) -> None:
        self.recovery.recovery_completed()

    def maybe_sample(self, consumer: Any) -> None:
        """`consumer` is a confluent_kafka.Consumer; only cached offsets are read (no I/O),
        except the partition count of the profile commands topic when counting profiles."""
        now = time.monotonic()
        if self.profile_count.counting and now >= self._next_slice:
            self._next_slice = now + self.slice_every_s
            count = self.profile_count.step()
            if count is not None:
                state_metrics().active_profiles.set(count)
        if now < self._next_sample:
            return
        self._next_sample = now + self.sample_every_s
        assigned = consumer.assignment()
        positions = consumer.position(assigned) if assigned else []
        current: list[PartitionPosition] = []
        for tp in positions:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # not fetched yet: unknown, not zero
                continue
            committed = tp.offset if tp.offset >= 0 else None
            current.append(PartitionPosition(tp.topic, tp.partition, high, committed, max(low, 0)))
        owned = {(p.topic, p.partition) for p in current}
        report_consumer_lag(current, revoked=self._lag_series - owned)
        self._lag_series = owned
        report_table_sizes(self.table_dirs)
        if self.readiness.ready and now >= self._next_count and not self.profile_count.counting:
            self._next_count = now + self.count_every_s
            self._start_count(consumer, assigned)

    def _start_count(self, consumer: Any, assigned: list[Any]) -> None:
        topic = self.profile_commands_topic
        owned = {tp.partition for tp in assigned if tp.topic == topic}
        if not owned:
            state_metrics().active_profiles.set(0)
            return
        try:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
        except KafkaException:
            return  # broker away: counted at the next sample, the gauge keeps its last value
        if metadata is None or not metadata.partitions:
            return
        self.profile_count.start(owned, len(metadata.partitions))


def directory_size_bytes(path: Path) -> int:
    """Bytes of all regular files under `path` (0 when it does not exist yet)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                # RocksDB deletes obsolete SST and log files while we walk.
                continue
    return total
