"""The worker's Kafka loop: consume a batch, run it through the stages, produce the outputs and
the state changelog, commit — in one Kafka transaction when exactly-once is chosen.

Why not Faust: faust-streaming 0.11.3 with aiokafka 0.14 and Kafka 4.1 fails on this stack
before processing anything (see docs/architecture.md, "Runtime"). This loop is the thin
confluent-kafka shell ARCHITECTURE.md section 6 allows, around the same pure core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from omnid.config import Settings
from omnid.contracts import OutputSender
from omnid.identity.commands import Stage
from omnid.kafka.stages import STATEFUL_STAGES, Table
from omnid.pipeline.health import WorkerOperations
from omnid.pipeline.partitioning import partition_for
from omnid.pipeline.processor import (
    Incoming,
    LocalCommand,
    Outgoing,
    StageProcessor,
    StateWrite,
)
from omnid.pipeline.state_store import TableStore
from omnid.pipeline.topology import PipelineTopics

log = logging.getLogger(__name__)

# After the first record of a batch, how long to gather more. Every batch is one transaction
# (a few broker round trips), so batches of one cap throughput; waiting long adds latency.
# With commands for owned partitions handled in the same batch an event takes one hop, and
# 10 ms measured best on a 2-core machine (omnid bench, 100 and 1,000 events/s: 50 ms gave
# p50 114 ms at 100 events/s, 10 ms 66 ms; 0 ms, i.e. only what arrived during the last
# commit, was worse at both loads).
BATCH_LINGER_S = 0.01

# Key -> partition of the command topics: ~150 bytes an entry, so at most ~15 MiB.
PARTITION_CACHE_ENTRIES = 100_000
CONSUMER_QUEUE_KBYTES = 16 * 1024

_LEADER_ERRORS = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
)


_REBALANCE_ERRORS = (
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.UNKNOWN_MEMBER_ID,
)


class ProcessingGuarantee(StrEnum):
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    data_dir: Path
    web_url: str
    guarantee: ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE
    group: str | None = None
    batch_size: int = 500
    # A SIGKILLed member's partitions move after this; the broker's minimum is 6 s by default.
    session_timeout_ms: int = 6_000
    # An open transaction of a SIGKILLed worker blocks its partitions until it times out.
    transaction_timeout_ms: int = 10_000


@dataclass
class WorkerStatus:
    """What the lookup API and tests can ask a worker about itself."""

    name: str
    assigned: set[tuple[str, int]] = field(default_factory=set)
    ready: set[tuple[str, int]] = field(default_factory=set)
    restored_records: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    batches: int = 0


class Worker:
    """One member of the worker group: owns some partitions of every input topic."""

    def __init__(
        self,
        settings: Settings,
        options: WorkerOptions,
        processor: StageProcessor,
        topics: PipelineTopics,
    ) -> None:
        self.settings = settings
        self.options = options
        self.processor = processor
        self.topics = topics
        self.group = options.group or topics.default_group()
        self.status = WorkerStatus(options.name, restored_records={t.value: 0 for t in Table})
        self.stores = {table: TableStore(options.data_dir / table.value) for table in Table}
        self.operations = WorkerOperations(
            {table: store.path for table, store in self.stores.items()},
            self.stores[Table.PROFILES].entries,
            topics.profile_commands,
        )
        self.stopping = threading.Event()
        client = settings.kafka_client_config()
        self.admin = AdminClient(client)
        self._consumer = Consumer(
            {
                **client,
                "group.id": self.group,
                # Peers find this worker's lookup API through the group's member list.
                "client.id": f"omnid-worker {options.name} {options.web_url}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": options.session_timeout_ms,
                "heartbeat.interval.ms": max(500, options.session_timeout_ms // 6),
                "max.poll.interval.ms": 120_000,
                # A read_committed fetch parked on not-yet-committed records is not woken by
                # the commit marker: cap the wait, or each stage can add up to 500 ms.
                "fetch.wait.max.ms": 50,
                # librdkafka prefetches up to 64 MiB per consumer by default; a batch is
                # at most a few MiB, so 16 MiB keeps the fetcher busy with a bounded memory.
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            }
        )
        producer_config: dict[str, Any] = {
            **client,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Keyed records land where the Java client would put them: lookups compute the
            # same partition with omnid.pipeline.partitioning.
            "partitioner": "murmur2_random",
        }
        if self.exactly_once:
            producer_config["transactional.id"] = f"{self.group}.{options.name}"
            producer_config["transaction.timeout.ms"] = options.transaction_timeout_ms
        self._producer = Producer(producer_config)
        self._sender = OutputSender(self._producer, self._delivered)
        self._changelog_tables = {topics.state_changelog(table): table for table in Table}
        self._restorer = Consumer(
            {
                **client,
                "group.id": f"{self.group}.restore.{options.name}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            }
        )
        # Uncommitted writes of the current batch, read before the stores.
        self._pending: dict[Table, dict[str, StateWrite]] = {t: {} for t in Table}
        self._changelog_next: dict[Table, dict[int, int]] = {t: {} for t in Table}
        # at-least-once only: state changes held back until the batch's outputs are durable.
        self._unsent_changelog: list[StateWrite] = []
        self._delivery_failures: list[KafkaError] = []
        # Exactly-once only: a command for a command-topic partition this worker owns is handled
        # in the same batch and transaction, not sent round the broker (a hop of latency, an
        # encode and a decode saved). Kafka keeps one producer's records to a partition in
        # order, so a partition goes local only once this worker has processed everything
        # already in it (`_catching_up`: partition -> offset to reach); records from other
        # workers may interleave with local ones in any order, as they would in the topic.
        self._command_stages = {s.stage: topics.command_topic(s.stage) for s in STATEFUL_STAGES}
        self._partition_counts: dict[str, int] = {}
        self._partition_of: dict[tuple[str, str], int] = {}
        self._local: set[tuple[str, int]] = set()
        self._catching_up: dict[tuple[str, int], int] = {}
        self._local_queue: deque[LocalCommand] = deque()
        if self.exactly_once:
            processor.local_router = self._local_partition

    @property
    def exactly_once(self) -> bool:
        return self.options.guarantee is ProcessingGuarantee.EXACTLY_ONCE

    # -- set-up ------------------------------------------------------------------------------

    def ensure_changelogs(self) -> None:
        """Creates the compacted state changelogs, partitioned like their source topics.
        Compaction without deletion: a changelog is the only durable copy of a table."""
        metadata = self.admin.list_topics(timeout=30)
        wanted = []
        for table in Table:
            name = self.topics.state_changelog(table)
            if name in metadata.topics:
                continue
            source = metadata.topics.get(self.topics.source_of(table))
            if source is None:
                raise RuntimeError(f"topic {self.topics.source_of(table)} does not exist")
            config = {"cleanup.policy": "compact", "min.insync.replicas": "1"}
            wanted.append(NewTopic(name, num_partitions=len(source.partitions), config=config))
        for name, future in self.admin.create_topics(wanted).items() if wanted else ():
            try:
                future.result(30)
                log.info("created changelog topic %s", name)
            except KafkaException as error:
                # Another worker starting at the same moment may have won the race.
                log.info("changelog topic %s: %s", name, error.args[0].str())
        deadline = time.monotonic() + 30
        names = {self.topics.state_changelog(table) for table in Table}
        while not names <= set(self.admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"changelog topics {sorted(names)} did not appear")
            time.sleep(0.2)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        self.ensure_changelogs()
        if self.exactly_once:
            # Also fences (and aborts the open transaction of) a previous life of this worker.
            self._producer.init_transactions(60)
        self._consumer.subscribe(
            list(self.topics.inputs), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while not self.stopping.is_set():
                batch = [m for m in self._next_batch() if self._usable(m)]
                if batch:
                    self._process_batch(batch)
                self.operations.maybe_sample(self._consumer)
        finally:
            self.close()

    def _next_batch(self) -> list[Message]:
        """Waits for one record, then gathers more for at most BATCH_LINGER_S: a batch never
        waits to fill up, so a quiet stream is not delayed (each stage is one hop of latency)."""
        first = self._consumer.poll(0.2)
        if first is None:
            return []
        rest = self._consumer.consume(self.options.batch_size - 1, timeout=BATCH_LINGER_S)
        return [first, *rest]

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise KafkaException(error)
        log.warning("consumer: %s", error.str())
        return False

    def _process_batch(self, batch: list[Message]) -> None:
        if self.exactly_once:
            self._producer.begin_transaction()
        try:
            for message in batch:
                self._process(message)
            self._take_state_writes()
            if not self.exactly_once:
                # Without a transaction, order is the guarantee: a state change may become
                # durable only after the outputs it caused. A handler replayed against the new
                # state (say, a Claim that now finds its owner) emits nothing a second time, so
                # an output lost behind its durable state change would be lost for good.
                self._flush()
                for write in self._unsent_changelog:
                    self._send_changelog(write)
                self._unsent_changelog.clear()
            self._flush()
            offsets = self._next_offsets(batch)
            if self.exactly_once:
                self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), 30
                )
                self._producer.commit_transaction(30)
            self._commit_stores()
            if not self.exactly_once:
                # Outputs and state are durable: only now may the input be marked done.
                self._commit_offsets(offsets)
        except KafkaException as error:
            self._recover(batch, error)
            return
        self.processor.tally.publish()
        self.status.processed += len(batch)
        self.status.batches += 1

    def _commit_offsets(self, offsets: list[TopicPartition]) -> None:
        """at-least-once: a commit refused because the group is rebalancing is not an error;
        the partitions' next owner replays the batch, and handlers are idempotent."""
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() not in _REBALANCE_ERRORS:
                raise
            log.warning("offset commit refused mid-rebalance: %s", error.args[0].str())

    def _process(self, message: Message) -> None:
        incoming = Incoming(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            key=message.key(),
            value=message.value(),
        )
        source = (incoming.topic, incoming.partition)
        target = self._catching_up.get(source)
        if target is not None and incoming.offset + 1 >= target:
            del self._catching_up[source]
            self._local.add(source)
        self._route(self.processor.process(incoming, self._read))
        queue = self._local_queue
        while queue:
            local = queue.popleft()
            self._route(
                self.processor.handle(local.table, local.partition, local.command, self._read)
            )

    def _route(self, outputs: list[Outgoing | LocalCommand]) -> None:
        for output in outputs:
            if isinstance(output, LocalCommand):
                self._local_queue.append(output)
            else:
                self._send(output)

    def _take_state_writes(self) -> None:
        for update in self.processor.take_profile_updates():
            self._send(update)
        for write in self.processor.take_state_writes():
            self._pending[write.table][write.key] = write
            if self.exactly_once:
                self._send_changelog(write)
            else:
                self._unsent_changelog.append(write)

    def _local_partition(self, stage: Stage, key: str) -> int | None:
        topic = self._command_stages[stage]
        count = self._partition_counts.get(topic)
        if count is None:
            return None
        partition = self._partition_of.get((topic, key))
        if partition is None:
            # murmur2 in Python is a visible share of a command's cost; keys repeat a lot.
            if len(self._partition_of) >= PARTITION_CACHE_ENTRIES:
                self._partition_of.clear()
            partition = partition_for(key, count)
            self._partition_of[(topic, key)] = partition
        return partition if (topic, partition) in self._local else None

    def _flush(self) -> None:
        """Every record produced so far is acknowledged (or the batch is not committed)."""
        remaining = self._producer.flush(30)
        if remaining:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, f"{remaining} records not delivered")
            )
        if self._delivery_failures:
            failure = self._delivery_failures[0]
            self._delivery_failures.clear()
            raise KafkaException(failure)

    def _read(self, table: Table, _partition: int, key: str) -> bytes | None:
        pending = self._pending[table].get(key)
        return pending.value if pending is not None else self.stores[table].get(key)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        """The one delivery path of this worker's producer: a failure fails the batch; an
        acknowledged changelog record moves its partition's checkpoint, and a partition still
        catching up goes local only after this worker's own record in it."""
        if error is not None:
            self._delivery_failures.append(error)
            return
        topic, partition = message.topic(), message.partition()
        table = self._changelog_tables.get(topic)
        if table is not None:
            seen = self._changelog_next[table]
            seen[partition] = max(seen.get(partition, 0), message.offset() + 1)
        elif (topic, partition) in self._catching_up:
            source = (topic, partition)
            self._catching_up[source] = max(self._catching_up[source], message.offset() + 1)

    def _send(self, output: Outgoing) -> None:
        self._sender.send(output.topic, output.key, output.value, output.headers)

    def _send_changelog(self, write: StateWrite) -> None:
        # Same partition number as the source record: the table is co-partitioned.
        topic = self.topics.state_changelog(write.table)
        self._sender.send(topic, write.key.encode(), write.value, partition=write.partition)

    @staticmethod
    def _next_offsets(batch: Iterable[Message]) -> list[TopicPartition]:
        highest: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.topic(), message.partition())
            highest[key] = max(highest.get(key, -1), message.offset())
        return [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]

    def _commit_stores(self) -> None:
        for table in Table:
            writes = self._pending[table]
            checkpoints = self._changelog_next[table]
            if writes or checkpoints:
                self.stores[table].write(
                    ((w.key, w.value) for w in writes.values()), dict(checkpoints)
                )
            writes.clear()
            checkpoints.clear()

    def _recover(self, batch: list[Message], error: KafkaException) -> None:
        """An aborted batch: forget its state changes and read it again from its first offset."""
        kafka_error: KafkaError = error.args[0]
        if kafka_error.fatal() or not (self.exactly_once and kafka_error.txn_requires_abort()):
            raise error
        log.warning("aborting transaction: %s", kafka_error.str())
        self._producer.abort_transaction(30)
        for table in Table:
            self._pending[table].clear()
            self._changelog_next[table].clear()
        self._unsent_changelog.clear()
        self._local_queue.clear()
        self.processor.discard_state_changes()
        first: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.topic(), message.partition())
            first[key] = min(first.get(key, message.offset()), message.offset())
            if key in self._local or key in self._catching_up:
                # Read again from `first`: not local until this batch is processed once more.
                self._local.discard(key)
                reached = max(self._catching_up.get(key, 0), message.offset() + 1)
                self._catching_up[key] = reached
        for (topic, partition), offset in first.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    # -- rebalances --------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.operations.rebalance_started()
        self.status.assigned = {(tp.topic, tp.partition) for tp in partitions}
        owned = [tp for tp in partitions if self.topics.table_of(tp.topic) is not None]
        committed: list[TopicPartition] = []
        if owned:
            # Waits until no transaction of a previous owner is pending on these partitions
            # (KIP-447 stable offsets): only then is the changelog complete up to the LSO.
            committed = consumer.committed(owned, timeout=120)
        for tp in partitions:
            table = self.topics.table_of(tp.topic)
            if table is not None:
                self._restore(table, tp.partition)
            self.status.ready.add((tp.topic, tp.partition))
        if self.exactly_once:
            for tp in committed:
                self._start_catching_up(tp)
        self.operations.recovery_completed()

    def _start_catching_up(self, committed: TopicPartition) -> None:
        """A newly owned command partition goes local once its committed records are done."""
        topic = committed.topic
        if topic not in self._partition_counts:
            metadata = self.admin.list_topics(topic, timeout=30).topics[topic]
            self._partition_counts[topic] = len(metadata.partitions)
        source = (topic, committed.partition)
        end = self._list_offset(
            TopicPartition(topic, committed.partition), IsolationLevel.READ_COMMITTED
        )
        if committed.offset >= end or end == 0:
            self._local.add(source)
        else:
            self._catching_up[source] = end

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.status.ready.discard((tp.topic, tp.partition))
            self.status.assigned.discard((tp.topic, tp.partition))
            self._local.discard((tp.topic, tp.partition))
            self._catching_up.pop((tp.topic, tp.partition), None)

    def _restore(self, table: Table, partition: int) -> None:
        """Replays the changelog partition from this store's checkpoint to its last stable
        offset, so the table holds every committed write even if this disk was empty."""
        store = self.stores[table]
        topic = self.topics.state_changelog(table)
        tp = TopicPartition(topic, partition)
        stable_end = self._stable_end(tp)
        start = store.checkpoint(partition)
        log.info(
            "%s partition %d: local at %d, changelog at %d", table, partition, start, stable_end
        )
        if start >= stable_end:
            return
        self._restorer.assign([TopicPartition(topic, partition, start)])
        restored = 0
        position = start
        idle_polls = 0
        while position < stable_end and idle_polls < 50:
            entries: list[tuple[str, bytes | None]] = []
            for message in self._restorer.consume(1000, timeout=0.1):
                if (
                    message.error() is None
                    and message.key() is not None
                    and (message.topic(), message.partition()) == (topic, partition)
                ):
                    entries.append((message.key().decode(), message.value()))
            reached = self._restorer.position([TopicPartition(topic, partition)])[0].offset
            idle_polls = 0 if entries or reached > position else idle_polls + 1
            position = max(reached, position)
            store.write(entries, {partition: position})
            restored += len(entries)
        if position < stable_end:
            log.warning(
                "%s partition %d restored to %d of %d", table, partition, position, stable_end
            )
        self._restorer.unassign()
        self.status.restored_records[table.value] += restored
        log.info("restored %d %s records of partition %d", restored, table.value, partition)

    def _stable_end(self, tp: TopicPartition) -> int:
        """The changelog partition's end once no transaction is open on it.

        Nobody else writes a partition this worker was just given, except a SIGKILLed
        previous owner whose last transaction is still open: it may yet commit (its EndTxn was
        sent) or be aborted (timeout, or fenced by a restart). Restoring up to the last stable
        offset before it is decided, then processing, would miss its writes if it commits, so
        wait until the stable end reaches the log end. Retried while a new topic elects a leader.
        """
        deadline = time.monotonic() + 120
        waiting_logged = False
        while True:
            try:
                stable = self._list_offset(tp, IsolationLevel.READ_COMMITTED)
                end = self._list_offset(tp, IsolationLevel.READ_UNCOMMITTED)
            except KafkaException as error:
                if not error.args[0].retriable() and error.args[0].code() not in _LEADER_ERRORS:
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            if stable >= end or time.monotonic() > deadline:
                return stable
            if not waiting_logged:
                log.info("%s[%d]: waiting for an open transaction to end", tp.topic, tp.partition)
                waiting_logged = True
            time.sleep(0.2)

    def _list_offset(self, tp: TopicPartition, isolation: IsolationLevel) -> int:
        listed = self.admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=isolation)
        return int(listed[tp].result(30).offset)

    def close(self) -> None:
        try:
            self._consumer.close()
        finally:
            self._restorer.close()
            self._producer.flush(10)
            for store in self.stores.values():
                store.close()
