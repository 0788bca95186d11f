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
from confluent_kafka.admin import AdminClient, NewTopic

from omnid.config import Settings
from omnid.contracts import OutputSender
from omnid.identity.commands import Stage
from omnid.kafka.stages import STATEFUL_STAGES, Table
from omnid.pipeline.checkpoint import Checkpoint, ConsumerCommit, OffsetCommit, TransactionalCommit
from omnid.pipeline.outage import (
    BrokerWait,
    Fault,
    WorkerStopped,
    classify,
    kafka_error,
    stop_reason,
)
from omnid.pipeline.partitioning import partition_for
from omnid.pipeline.processor import (
    Incoming,
    LocalCommand,
    Outgoing,
    StageProcessor,
)
from omnid.pipeline.restore import CONSUMER_QUEUE_KBYTES, ChangelogRestorer
from omnid.pipeline.roster import Roster
from omnid.pipeline.runtime_metrics import runtime_metrics
from omnid.pipeline.standby import StandbyReplicas
from omnid.pipeline.state_store import TableStore
from omnid.pipeline.topic_names import PipelineTopics
from omnid.pipeline.worker_health import WorkerOperations

log = logging.getLogger(__name__)

# After the first record of a batch, how long to gather more. Every batch is one transaction
# (a few broker round trips), so batches of one cap throughput; waiting long adds latency.
# With commands for owned partitions handled in the same batch an event takes one hop, and
# 10 ms measured best on a 2-core machine (omnid bench, 100 and 1,000 events/s: 50 ms gave
# p50 114 ms at 100 events/s, 10 ms 66 ms; 0 ms, i.e. only what arrived during the last
# commit, was worse at both loads).
BATCH_LINGER_S = 0.01

# Records a batch takes at most. Larger batches coalesce more (one ProfileUpdate per profile,
# one state write per key per batch) and commit less often. On `omnid bench-scale --events
# 100000 --customers 20000 --loads 100 --phase-seconds 2 --skip-check`, two interleaved pairs
# with nothing else running, 2,000 against 500 gave +5.5% events/s (1,564 against 1,482 mean)
# and 2% less worker CPU per event, peak RSS 250-263 against 244 MiB; on the 1,000,000-event
# workload (loaded) +2.5-4% events/s with RSS last/first tenth 1.25 against 1.23 (peak 320
# against 282). RSS is the tighter target, so 500 stays.
BATCH_RECORDS = 500

# Key -> partition of the command topics: ~150 bytes an entry, so at most ~7.5 MiB.
PARTITION_CACHE_ENTRIES = 50_000

# Between two tries of a batch that met a retriable error.
RETRY_PAUSE_S = 0.5
# A fatal producer error this soon after a retriable one is taken as the outage's doing.
OUTAGE_AFTERMATH_S = 120.0


class ProcessingGuarantee(StrEnum):
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


class GroupProtocol(StrEnum):
    """How the group assigns partitions (librdkafka's group.protocol).

    CONSUMER (KIP-848): the broker assigns, incrementally: a member joining or leaving moves
    only the partitions that must move, and the others keep processing and answering lookups.
    Its server-side `range` assignor gives partition p of every co-partitioned input topic to
    the same member. Session timeout and heartbeat interval are broker settings
    (group.consumer.*; deploy/kafka/server.properties sets 6 s and 1 s).
    CLASSIC: eager range assignment: every rebalance revokes everything from everyone."""

    CONSUMER = "consumer"
    CLASSIC = "classic"


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    data_dir: Path
    web_url: str
    guarantee: ProcessingGuarantee = ProcessingGuarantee.EXACTLY_ONCE
    group: str | None = None
    batch_size: int = BATCH_RECORDS
    batch_linger_s: float = BATCH_LINGER_S
    # A SIGKILLed member's partitions move after this; the broker's minimum is 6 s by default.
    session_timeout_ms: int = 6_000
    # An open transaction of a SIGKILLed worker blocks its partitions until it times out.
    transaction_timeout_ms: int = 10_000
    # Other workers' table partitions kept warm here (see omnid.pipeline.standby); 0: none.
    standby_replicas: int = 1
    group_protocol: GroupProtocol = GroupProtocol.CONSUMER


@dataclass
class WorkerStatus:
    """What the lookup API and tests can ask a worker about itself."""

    name: str
    assigned: set[tuple[str, int]] = field(default_factory=set)
    ready: set[tuple[str, int]] = field(default_factory=set)
    restored_records: dict[str, int] = field(default_factory=dict)
    # The last restore after an assignment: records read from changelogs, and how long it took.
    last_restore: dict[str, float] = field(default_factory=dict)
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
        self.broker_wait = BrokerWait(self.stopping)
        self._producer_ready_at = 0.0  # when init_transactions last succeeded
        client = settings.kafka_client_config()
        self.admin = AdminClient(client)
        self._consumer = Consumer(
            {
                **client,
                "error_cb": self.broker_wait.client_error,
                "group.id": self.group,
                # For the broker's own tools; peers find each other on the roster topic.
                "client.id": f"omnid-worker {options.name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                **self._group_protocol_config(),
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
            "error_cb": self.broker_wait.client_error,
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
        self._producer_config = producer_config
        self._producer = Producer(producer_config)
        offsets: OffsetCommit = (
            TransactionalCommit(self._producer, self._consumer, self.broker_wait)
            if self.exactly_once
            else ConsumerCommit(self._producer, self._consumer, self.broker_wait)
        )
        self._sender = OutputSender(self._producer, self._delivered)
        self.checkpoint = Checkpoint(self._sender, offsets, self.stores, topics.state_changelog)
        self._restorer = ChangelogRestorer(
            client,
            f"{self.group}.restore.{options.name}",
            self.stores,
            {table: topics.state_changelog(table) for table in Table},
            self.broker_wait,
        )
        # Who owns what, as every worker publishes it (never asked of the group coordinator).
        self.roster = Roster(
            client, topics.worker_roster(), self.group, options.name, options.web_url
        )
        self.standby = StandbyReplicas(
            client,
            self.group,
            options.name,
            self.stores,
            topics,
            options.standby_replicas,
            self.roster,
        )
        # Exactly-once only: a command for a command-topic partition this worker owns is handled
        # in the same batch and transaction, not sent round the broker (a hop of latency, an
        # encode and a decode saved). Kafka keeps one producer's records to a partition in
        # order, so a partition goes local only once this worker has processed everything
        # already in it (`_catching_up`: partition -> offset to reach); records from other
        # workers may interleave with local ones in any order, as they would in the topic.
        self._command_stages = {s.stage: topics.command_topic(s.stage) for s in STATEFUL_STAGES}
        self._partition_counts: dict[str, int] = {}
        self._partition_of: dict[tuple[str, str], int] = {}
        self._handled_in_process: set[tuple[str, int]] = set()
        self._catching_up: dict[tuple[str, int], int] = {}
        self._in_process: deque[LocalCommand] = deque()
        # The batch's records for topics (outputs, commands for other workers), produced together
        # when its records are processed (see _process_batch).
        self._outgoing: list[Outgoing] = []
        # While a batch is retried: the partitions paused, the batch held (see _step).
        self._retrying = False
        self._paused: list[TopicPartition] = []
        self._held: list[Message] = []
        if self.exactly_once:
            processor.local_router = self._in_process_partition

    def _group_protocol_config(self) -> dict[str, Any]:
        if self.options.group_protocol is GroupProtocol.CONSUMER:
            # The session timeout and heartbeat interval are the broker's (group.consumer.*).
            return {"group.protocol": "consumer", "group.remote.assignor": "range"}
        return {
            "group.protocol": "classic",
            "session.timeout.ms": self.options.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.options.session_timeout_ms // 6),
        }

    @property
    def exactly_once(self) -> bool:
        return self.options.guarantee is ProcessingGuarantee.EXACTLY_ONCE

    # -- set-up ------------------------------------------------------------------------------

    def ensure_changelogs(self) -> None:
        """Creates the compacted state changelogs, partitioned like their source topics, and
        the roster. Compaction without deletion: a changelog is the only durable copy of a table."""
        metadata = self.admin.list_topics(timeout=30)
        wanted = []
        if self.topics.worker_roster() not in metadata.topics:
            # Record times are the broker's: the roster ages members by its own clock.
            roster = {"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}
            roster |= {"segment.ms": "600000", "min.insync.replicas": "1"}
            wanted.append(NewTopic(self.topics.worker_roster(), num_partitions=1, config=roster))
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
                log.info("created topic %s", name)
            except KafkaException as error:
                # Another worker starting at the same moment may have won the race.
                log.info("topic %s: %s", name, error.args[0].str())
        deadline = time.monotonic() + 30
        names = set(self.topics.created_by_workers())
        while not names <= set(self.admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics {sorted(names)} did not appear")
            time.sleep(0.2)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        self.ensure_changelogs()
        self.roster.start()
        self.standby.start()
        self._init_transactions()
        self._consumer.subscribe(
            list(self.topics.inputs), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        try:
            while not self.stopping.is_set():
                self._step()
        finally:
            self.close()

    def _init_transactions(self) -> None:
        if self.exactly_once:
            # Also fences (and aborts the open transaction of) a previous life of this worker.
            self.broker_wait.retry(
                lambda: self._producer.init_transactions(60), "initialising transactions"
            )
            self._producer_ready_at = time.monotonic()

    def _renew_producer_after_an_outage(self) -> None:
        """A transactional producer initialised before a broker wait (going on, or over) is
        replaced before its next batch. With librdkafka 2.16 the first send_offsets_to_transaction
        of a producer that lived through a broker restart blocked until the 45 s bound, on any
        worker whose batch the outage did not hit (that abort replaces the producer anyway): in
        the chaos run also after a wait this worker saw for a second only. A new producer, whose
        init_transactions runs once the broker answers, commits at once. Kafka Streams likewise
        builds a new producer (StreamsProducer.resetProducer) rather than trust one whose
        transactional state it cannot vouch for."""
        began = self.broker_wait.last_began()
        if self.exactly_once and began is not None and self._producer_ready_at < began:
            log.info("replacing the producer: it predates a broker outage")
            self._renew_producer()

    def _step(self) -> None:
        """One batch: consumed, processed, committed. On a retriable Kafka error anywhere in it
        the worker pauses its partitions, aborts the batch and keeps it, and processes it again
        (less what was revoked meanwhile) until it commits; then it resumes consuming."""
        batch: list[Message] = []
        try:
            if self._retrying:
                batch = self._retried_batch()
            else:
                batch = [m for m in self._next_batch() if self._usable(m)]
            if batch:
                self._renew_producer_after_an_outage()
                self._process_batch(batch)
                self.broker_wait.over()
            else:
                self.broker_wait.maybe_over()
            if self._retrying:
                self._resume()
        except KafkaException as raised:
            error = kafka_error(raised)
            if error is None or not self._outlived(error):
                raise WorkerStopped(
                    stop_reason(self.options.name, error) if error else str(raised)
                ) from raised
            self.broker_wait.noticed(error, "processing a batch")
            self._pause(batch)
            self.broker_wait.retry(lambda: self._abort(error), "aborting a batch")
            time.sleep(RETRY_PAUSE_S)
        self.operations.maybe_sample(self._consumer)

    def _outlived(self, error: KafkaError) -> bool:
        """Whether the worker carries on after `error`. A fatal producer error right after an
        outage is one of its consequences, not a rival: the coordinator aborted a transaction
        that outlived its timeout while the broker was away, and the producer's epoch with it."""
        if classify(error) is Fault.RETRIABLE:
            return True
        return error.fatal() and self.broker_wait.seen_within(OUTAGE_AFTERMATH_S)

    def _pause(self, batch: list[Message]) -> None:
        """Stops fetching (the consumer's position stays after `batch`) and keeps the batch.
        A paused consumer still serves the group protocol when polled, so a rebalance during
        the wait is taken as it comes (see _on_revoke)."""
        if not self._retrying:
            self._retrying = True
            self._paused = self._consumer.assignment()
            if self._paused:
                self._consumer.pause(self._paused)
        self._held = list(batch)
        runtime_metrics().batches_retried.inc()

    def _resume(self) -> None:
        # librdkafka keeps a partition's pause across a revoke and a new assignment: resume
        # what was paused, wherever it went, and whatever is assigned now.
        partitions = {(tp.topic, tp.partition) for tp in self._paused}
        partitions |= {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        if partitions:
            self._consumer.resume([TopicPartition(t, p) for t, p in sorted(partitions)])
        self._retrying = False
        self._paused = []
        self._held = []

    def _retried_batch(self) -> list[Message]:
        """The held batch, after a poll that serves callbacks (its partitions are paused; a
        partition newly assigned meanwhile is not, and its records join the batch)."""
        polled = self._consumer.poll(RETRY_PAUSE_S)
        if polled is not None and self._usable(polled):
            self._held.append(polled)
        return self._held

    def _abort(self, error: KafkaError) -> None:
        """Forgets what the held batch did: its state changes dropped and, under exactly-once,
        its transaction aborted by a new producer (at-least-once: its queued records purged).

        A new producer rather than abort_transaction: after an outage librdkafka's transaction
        state can be wedged (an epoch bump that never completes, send_offsets_to_transaction
        blocking past its timeout; seen here with librdkafka 2.16), and a fatal error leaves no
        choice anyway. Its init_transactions ends the open transaction on the broker. One doubt
        remains: the batch's commit may have landed before the error. Records the group has
        committed are dropped from the batch, and the tables catch up with their changelogs."""
        renewed = self.checkpoint.abort() or error.fatal()
        if renewed:
            log.info("replacing the producer to end the aborted batch's transaction")
            self._renew_producer()
        self._in_process.clear()
        self._outgoing.clear()
        self.processor.discard_state_changes()
        for message in self._held:
            source = (message.topic(), message.partition())
            if source in self._handled_in_process or source in self._catching_up:
                # Processed again: not local until this batch is processed once more.
                self._handled_in_process.discard(source)
                reached = max(self._catching_up.get(source, 0), message.offset() + 1)
                self._catching_up[source] = reached
        if renewed and self._held:
            sources = {(m.topic(), m.partition()) for m in self._held}
            committed = self._consumer.committed(
                [TopicPartition(t, p) for t, p in sources], timeout=30
            )
            done = {(tp.topic, tp.partition): tp.offset for tp in committed}
            self._held = [
                m for m in self._held if m.offset() >= done.get((m.topic(), m.partition()), -1)
            ]
            self._restore(self._consumer.assignment())

    def _renew_producer(self) -> None:
        # Nothing of the old producer may reach the broker later; it is never polled again.
        self._producer.purge(in_queue=True, in_flight=True)
        self._producer = Producer(self._producer_config)
        self._sender = OutputSender(self._producer, self._delivered)
        self.checkpoint.use(self._sender)
        self._init_transactions()

    def _next_batch(self) -> list[Message]:
        """Waits for one record, then gathers more for at most `batch_linger_s`: a batch never
        waits to fill up, so a quiet stream is not delayed (each stage is one hop of latency)."""
        first = self._consumer.poll(0.2)
        if first is None:
            return []
        rest = self._consumer.consume(
            self.options.batch_size - 1, timeout=self.options.batch_linger_s
        )
        return [first, *rest]

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if classify(error) is not Fault.RETRIABLE:
            raise KafkaException(error)
        # The consumer reconnects by itself; the wait is reported once, not per poll.
        self.broker_wait.noticed(error, "fetching")
        return False

    def _process_batch(self, batch: list[Message]) -> None:
        self.checkpoint.begin()
        for message in batch:
            self._process(message)
        # Produced in one run, not as each record causes them: a produce() between two records'
        # processing found librdkafka's queue drained and woke its sender thread, and cost
        # 27-55 us of the worker's wall time against 5-9 us in a run (worker on the 1,000,000-event
        # workload). Per topic partition the order is the order they were caused in; within
        # the batch's transaction (or before its offsets, at-least-once) the order between
        # topics carries no meaning.
        self._outgoing.extend(self.processor.take_profile_updates())
        send = self._sender.send
        for output in self._outgoing:
            send(output.topic, output.key, output.value, output.headers)
        self._outgoing.clear()
        self.checkpoint.stage(self.processor.take_state_writes())
        self.checkpoint.commit(self._next_offsets(batch))
        self.processor.tally.publish()
        self.status.processed += len(batch)
        self.status.batches += 1

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
            self._handled_in_process.add(source)
        self._route(self.processor.process(incoming, self.checkpoint.read))
        queue = self._in_process
        while queue:
            local = queue.popleft()
            self._route(
                self.processor.handle(
                    local.table, local.partition, local.command, self.checkpoint.read
                )
            )

    def _route(self, outputs: list[Outgoing | LocalCommand]) -> None:
        for output in outputs:
            if isinstance(output, LocalCommand):
                self._in_process.append(output)
            else:
                self._outgoing.append(output)

    def _in_process_partition(self, stage: Stage, key: str) -> int | None:
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
        return partition if (topic, partition) in self._handled_in_process else None

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        """The one delivery path of this worker's producer: the checkpoint hears of every
        record, and a partition still catching up goes local only after this worker's own
        record in it."""
        self.checkpoint.delivered(error, message)
        if error is None:
            source = (message.topic(), message.partition())
            if source in self._catching_up:
                self._catching_up[source] = max(self._catching_up[source], message.offset() + 1)

    @staticmethod
    def _next_offsets(batch: Iterable[Message]) -> list[TopicPartition]:
        highest: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.topic(), message.partition())
            highest[key] = max(highest.get(key, -1), message.offset())
        return [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]

    def _tables(self, partitions: Iterable[TopicPartition]) -> list[tuple[Table, int]]:
        return [(t, tp.partition) for tp in partitions for t in self.topics.tables_of(tp.topic)]

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Brings the tables of `partitions` up to their changelogs (from where this worker's
        copy stands: a standby's copy is behind by seconds at most)."""
        tables = self._tables(partitions)
        if not tables:
            return
        self.standby.own(tables)
        report = self._restorer.restore(tables)
        for table, count in report.restored.items():
            self.status.restored_records[table.value] += count
        self.status.last_restore = {
            "records": sum(report.restored.values()),
            "seconds": round(report.seconds, 3),
        }

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions given to this worker: all of them under the classic protocol (after
        everything was revoked), only the added ones under the consumer protocol — the ones
        kept are neither revoked nor restored, and never stop answering."""
        if not partitions:
            self.operations.recovery_completed()  # nothing to restore (perhaps nothing at all)
            return
        log.info("assigned %d partitions", len(partitions))
        self.operations.rebalance_started()
        self.status.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self.roster.assigned(self.status.assigned)
        owned = [tp for tp in partitions if self.topics.table_of(tp.topic) is not None]
        committed: list[TopicPartition] = []
        if owned:
            # Waits until no transaction of a previous owner is pending on these partitions
            # (KIP-447 stable offsets): only then is the changelog complete up to the LSO.
            committed = self.broker_wait.retry(
                lambda: consumer.committed(owned, timeout=20), "reading committed offsets"
            )
        self._restore(owned)
        self.status.ready.update((tp.topic, tp.partition) for tp in partitions)
        if self.exactly_once:
            for tp in committed:
                self._start_catching_up(tp)
        self.operations.recovery_completed()

    def _start_catching_up(self, committed: TopicPartition) -> None:
        """A newly owned command partition goes local once its committed records are done."""
        topic = committed.topic
        if topic not in self._partition_counts:
            metadata = self.broker_wait.retry(
                lambda: self.admin.list_topics(topic, timeout=30), "reading topic metadata"
            )
            self._partition_counts[topic] = len(metadata.topics[topic].partitions)
        source = (topic, committed.partition)
        tp = TopicPartition(topic, committed.partition)
        end = self.broker_wait.retry(
            lambda: self._committed_end(tp), "listing a command partition's end"
        )
        if committed.offset >= end or end == 0:
            self._handled_in_process.add(source)
        else:
            self._catching_up[source] = end

    def _committed_end(self, tp: TopicPartition) -> int:
        return self._restorer.list_ends({tp: tp}, IsolationLevel.READ_COMMITTED)[tp]

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if revoked:
            log.info("revoked %d partitions", len(revoked))
        self.standby.disown(self._tables(partitions))
        # Their next owner (perhaps this worker again) reads them from the committed offsets.
        self._held = [m for m in self._held if (m.topic(), m.partition()) not in revoked]
        for tp in partitions:
            self.status.ready.discard((tp.topic, tp.partition))
            self.status.assigned.discard((tp.topic, tp.partition))
            self._handled_in_process.discard((tp.topic, tp.partition))
            self._catching_up.pop((tp.topic, tp.partition), None)
        if revoked:
            self.roster.assigned(self.status.assigned)

    def close(self) -> None:
        try:
            self._consumer.close()  # leaves the group: its partitions move without a timeout
            log.info("left the group")
        finally:
            self.roster.close()
            self.standby.close()
            self._restorer.close()
            try:
                self._producer.flush(10)
            except KafkaException as error:  # a fenced producer has nothing left to deliver
                log.info("producer not flushed on close: %s", error)
            for store in self.stores.values():
                store.close()
