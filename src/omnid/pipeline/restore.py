"""Brings a worker's local tables up to their changelogs before it processes their partitions.

A store remembers, per partition, the changelog offset it reflects (its checkpoint). Restoring
reads each changelog partition from there to its last stable offset. All partitions of a
rebalance are restored together: their end offsets are listed in one request per isolation
level, partitions whose checkpoint already equals the changelog end are skipped without a
fetch, and the rest are read by one consumer assigned to all of them at once.
Model read for the shape: quix-streams' `state/recovery.py` (a recovery manager apart from the
processing loop, changelog offsets kept in the store).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from omnid.kafka.stages import Table
from omnid.pipeline.outage import BrokerWait, kafka_error
from omnid.pipeline.state_store import TableStore

log = logging.getLogger(__name__)

# A previous owner's open transaction is decided (committed, aborted or timed out) well within
# this; waiting longer would only delay the partitions' new owner.
OPEN_TRANSACTION_WAIT_S = 120.0
# A partition that stops advancing short of its end (records compacted away at the tail of an
# aborted transaction) is given up after this many empty polls.
IDLE_POLLS = 50
# librdkafka prefetches up to 64 MiB per consumer by default; a batch or a restore read is
# at most a few MiB, so 16 MiB keeps the fetcher busy with a bounded memory (the worker's
# consumer uses the same bound).
CONSUMER_QUEUE_KBYTES = 16 * 1024

_STALE_LEADER = (
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.NOT_LEADER_FOR_PARTITION,
)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class RestoreReport:
    """What one restore did: records applied per table and partitions skipped as up to date."""

    restored: dict[Table, int]
    skipped: int
    seconds: float


@dataclass
class _Gap:
    table: Table
    partition: int
    position: int
    end: int


class ChangelogRestorer:
    """Restores table partitions from their changelog topics; owns its consumer."""

    def __init__(
        self,
        client_config: dict[str, str],
        group: str,
        stores: dict[Table, TableStore],
        changelog_topics: dict[Table, str],
        wait: BrokerWait,
    ) -> None:
        self._admin_config = dict(client_config)
        self.admin = AdminClient(self._admin_config)
        self.stores = stores
        self.changelog_topics = changelog_topics
        self.wait = wait
        self._consumer = Consumer(
            {
                **client_config,
                "group.id": group,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            }
        )

    def restore(self, partitions: Iterable[tuple[Table, int]]) -> RestoreReport:
        started = time.monotonic()
        wanted = sorted(set(partitions))
        restored = {table: 0 for table in Table}
        if not wanted:
            return RestoreReport(restored, 0, 0.0)
        ends = self.wait.retry(lambda: self._stable_ends(wanted), "listing changelog ends")
        gaps = []
        for table, partition in wanted:
            start = self.stores[table].checkpoint(partition)
            end = ends[(table, partition)]
            if start < end:
                gaps.append(_Gap(table, partition, start, end))
        if gaps:
            self._read(gaps, restored)
        report = RestoreReport(restored, len(wanted) - len(gaps), time.monotonic() - started)
        log.info(
            "restored %s from changelogs in %.2f s; %d of %d partitions already up to date",
            ", ".join(f"{n} {t.value}" for t, n in restored.items()),
            report.seconds,
            report.skipped,
            len(wanted),
        )
        return report

    def _stable_ends(self, wanted: list[tuple[Table, int]]) -> dict[tuple[Table, int], int]:
        """Each changelog partition's end once no transaction is open on it.

        Nobody else writes a partition this worker was just given, except a SIGKILLed previous
        owner whose last transaction is still open: it may yet commit (its EndTxn was sent) or be
        aborted (timeout, or fenced by a restart). Restoring up to the last stable offset before
        it is decided, then processing, would miss its writes if it commits, so wait until the
        stable end reaches the log end.
        """
        topic_partitions = {
            (table, p): TopicPartition(self.changelog_topics[table], p) for table, p in wanted
        }
        deadline = time.monotonic() + OPEN_TRANSACTION_WAIT_S
        logged = False
        while True:
            stable = self.list_ends(topic_partitions, IsolationLevel.READ_COMMITTED)
            end = self.list_ends(topic_partitions, IsolationLevel.READ_UNCOMMITTED)
            open_ = [key for key in wanted if stable[key] < end[key]]
            if not open_ or time.monotonic() > deadline:
                return stable
            if not logged:
                log.info("waiting for %d open transactions on changelogs to end", len(open_))
                logged = True
            time.sleep(0.2)

    def list_ends(
        self, topic_partitions: Mapping[K, TopicPartition], level: IsolationLevel
    ) -> dict[K, int]:
        """End offsets (last stable with READ_COMMITTED) of partitions, in one request."""
        listed = self.admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in topic_partitions.values()}, isolation_level=level
        )
        try:
            return {key: int(listed[tp].result(30).offset) for key, tp in topic_partitions.items()}
        except KafkaException as raised:
            error = kafka_error(raised)
            if error is not None and error.code() in _STALE_LEADER:
                # The admin client keeps asking with the leader epoch it knew before a broker
                # restart and is refused for ever (librdkafka 2.x): a new one fetches metadata.
                self.admin = AdminClient(self._admin_config)
            raise

    def _read(self, gaps: list[_Gap], restored: dict[Table, int]) -> None:
        by_source = {(self.changelog_topics[g.table], g.partition): g for g in gaps}
        self._consumer.assign(
            [TopicPartition(t, p, by_source[(t, p)].position) for t, p in by_source]
        )
        idle = {key: 0 for key in by_source}
        try:
            while idle and not self.wait.stopping.is_set():
                entries: dict[tuple[str, int], list[tuple[str, bytes | None]]] = {}
                messages = self.wait.retry(
                    lambda: self._consumer.consume(1000, timeout=0.1), "restoring a table"
                )
                for message in messages:
                    source = (message.topic(), message.partition())
                    if message.error() is None and message.key() is not None and source in idle:
                        entries.setdefault(source, []).append(
                            (message.key().decode(), message.value())
                        )
                positions = self.wait.retry(
                    lambda: self._consumer.position([TopicPartition(*s) for s in idle]),
                    "restoring a table",
                )
                for tp in positions:
                    source = (tp.topic, tp.partition)
                    gap = by_source[source]
                    applied = entries.get(source, [])
                    moved = tp.offset > gap.position
                    idle[source] = 0 if applied or moved else idle[source] + 1
                    gap.position = max(gap.position, tp.offset)
                    # Data and checkpoint in one write batch: a crash mid-restore resumes here.
                    self.stores[gap.table].write(applied, {gap.partition: gap.position})
                    restored[gap.table] += len(applied)
                    if gap.position >= gap.end:
                        del idle[source]
                    elif idle[source] >= IDLE_POLLS:
                        log.warning(
                            "%s partition %d restored to %d of %d",
                            gap.table.value,
                            gap.partition,
                            gap.position,
                            gap.end,
                        )
                        del idle[source]
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()
