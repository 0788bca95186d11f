"""One batch's commit, in order: the worker's only commit protocol.

Exactly-once or at-least-once is decided once, when the checkpoint is built, by the offset
commit it is given: inside a Kafka transaction (outputs, changelog and offsets become visible
together, or not at all), or the consumer's own commit after everything it covers is durable.
Models read for the shape: quix-streams' `checkpointing.Checkpoint` (state changes and offsets
of one commit interval, committed as numbered steps) and Kafka Streams' `StreamsProducer`
(transactional or not, decided when it is built).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from omnid.contracts import OutputSender
from omnid.kafka.stages import Table
from omnid.pipeline.outage import BrokerWait, kafka_error
from omnid.pipeline.processor import StateWrite
from omnid.pipeline.state_store import TableStore

log = logging.getLogger(__name__)

# Every Kafka call of a commit that may wait on the broker waits at most this long per try.
COMMIT_TIMEOUT_S = 30.0
HUNG_AFTER_S = COMMIT_TIMEOUT_S + 15.0

_REBALANCE_ERRORS = (
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.STALE_MEMBER_EPOCH,  # the consumer protocol's (KIP-848) ILLEGAL_GENERATION
    KafkaError.FENCED_MEMBER_EPOCH,
)


class OffsetCommit(Protocol):
    """How a batch's input offsets are committed: the one choice between the guarantees."""

    # Without a transaction, order is the guarantee: a state change may become durable only
    # after the outputs it caused. A handler replayed against the new state (say, a Claim that
    # now finds its owner) emits nothing a second time, so an output lost behind its durable
    # state change would be lost for good.
    outputs_before_state: bool

    def begin(self) -> None: ...

    def commit(self, offsets: list[TopicPartition]) -> None: ...

    def abort(self) -> bool:
        """Ends the open batch's writes; True if that takes a new producer (see Worker._abort)."""
        ...

    def use(self, producer: Producer) -> None: ...


class TransactionalCommit:
    """Exactly-once: the offsets go into the batch's transaction, which commits everything."""

    outputs_before_state = False

    def __init__(self, producer: Producer, consumer: Consumer, wait: BrokerWait) -> None:
        self.producer = producer
        self.consumer = consumer
        self.wait = wait
        self._open = False

    def use(self, producer: Producer) -> None:
        self.producer = producer
        self._open = False

    def begin(self) -> None:
        if not self._open:
            self.producer.begin_transaction()
            self._open = True

    def commit(self, offsets: list[TopicPartition]) -> None:
        metadata = self.consumer.consumer_group_metadata()
        _bounded(
            lambda: self.producer.send_offsets_to_transaction(offsets, metadata, COMMIT_TIMEOUT_S),
            "send_offsets_to_transaction",
        )
        # A commit that failed retriably may have reached the coordinator: aborting now could
        # throw away a transaction the broker has committed. librdkafka's rule is to call commit
        # again until it succeeds or says the transaction must be aborted.
        self.wait.retry(
            lambda: _bounded(
                lambda: self.producer.commit_transaction(COMMIT_TIMEOUT_S), "commit_transaction"
            ),
            "committing a batch",
        )
        self._open = False

    def abort(self) -> bool:
        # A new producer's init_transactions aborts the open transaction on the broker, also
        # when this producer's transaction state is wedged by the outage.
        self._open = False
        return True


def _bounded(call: Callable[[], None], name: str) -> None:
    """Runs a transactional call of librdkafka that has been seen to block far past its own
    timeout (send_offsets_to_transaction, for minutes, after a broker restart followed by a
    rebalance; librdkafka 2.16). Past HUNG_AFTER_S the worker stops waiting: a retriable error
    sends the batch to be processed again with a new producer, whose init_transactions ends
    whatever the stuck one had open (see Worker._abort)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # handed to the waiting thread
            outcome.append(error)

    thread = threading.Thread(target=run, name=f"omnid-{name}", daemon=True)
    thread.start()
    thread.join(HUNG_AFTER_S)
    if not outcome:
        log.warning("%s still blocked after %.0f s: giving up on this producer", name, HUNG_AFTER_S)
        # Must abort: calling it again on the same producer would only conflict with the
        # blocked call.
        blocked = KafkaError(KafkaError._TIMED_OUT, f"{name} blocked", txn_requires_abort=True)
        raise KafkaException(blocked)
    if outcome[0] is not None:
        raise outcome[0]


class ConsumerCommit:
    """At-least-once: the consumer commits the offsets once outputs and state are durable."""

    outputs_before_state = True

    def __init__(self, producer: Producer, consumer: Consumer, wait: BrokerWait) -> None:
        self.producer = producer
        self.consumer = consumer
        self.wait = wait

    def use(self, producer: Producer) -> None:
        self.producer = producer

    def begin(self) -> None:
        return None

    def commit(self, offsets: list[TopicPartition]) -> None:
        try:
            self.wait.retry(
                lambda: self.consumer.commit(offsets=offsets, asynchronous=False),
                "committing offsets",
            )
        except KafkaException as raised:
            error = kafka_error(raised)
            if error is None or error.code() not in _REBALANCE_ERRORS:
                raise
            # Not an error: the partitions' next owner replays the batch (handlers are
            # idempotent), and this worker's state already holds it.
            log.warning("offset commit refused mid-rebalance: %s", error.str())

    def abort(self) -> bool:
        # Records of the aborted attempt still queued would only be duplicates of the retry.
        self.producer.purge(in_queue=True, in_flight=False)
        self.producer.poll(0)
        return False


class Checkpoint:
    """The state changes of the open batch and their commit.

    Reads see the batch's own writes first (`read`), so a key written twice in one batch reads
    its latest value; nothing reaches RocksDB before the changelog and the offsets are committed.
    """

    def __init__(
        self,
        sender: OutputSender,
        offsets: OffsetCommit,
        stores: dict[Table, TableStore],
        changelog_topic: Callable[[Table], str],
    ) -> None:
        self.sender = sender
        self.offsets = offsets
        self.stores = stores
        self.changelog_topic = changelog_topic
        self._changelog_tables = {changelog_topic(table): table for table in Table}
        self._writes: dict[Table, dict[str, StateWrite]] = {t: {} for t in Table}
        # Per table and partition, the changelog offset after this batch's last acknowledged write.
        self._changelog_next: dict[Table, dict[int, int]] = {t: {} for t in Table}
        self._delivery_failures: list[KafkaError] = []

    def begin(self) -> None:
        self.offsets.begin()

    def use(self, sender: OutputSender) -> None:
        """A new producer (the old one broke); nothing of the open batch survives it."""
        self.sender = sender
        self.offsets.use(sender.producer)
        self._forget()

    def read(self, table: Table, key: str) -> bytes | None:
        pending = self._writes[table].get(key)
        return pending.value if pending is not None else self.stores[table].get(key)

    def stage(self, writes: Iterable[StateWrite]) -> None:
        for write in writes:
            self._writes[write.table][write.key] = write

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        """Delivery report of every record the batch produces: a failure fails the batch; an
        acknowledged changelog record moves its partition's checkpoint."""
        if error is not None:
            self._delivery_failures.append(error)
            return
        table = self._changelog_tables.get(message.topic())
        if table is not None:
            seen = self._changelog_next[table]
            partition = message.partition()
            seen[partition] = max(seen.get(partition, 0), message.offset() + 1)

    def commit(self, offsets: list[TopicPartition]) -> None:
        if self.offsets.outputs_before_state:
            self._flush()  # 1. outputs durable before any state change (at-least-once)
        self._send_changelog()  # 2. state changes to their changelogs
        if self.offsets.outputs_before_state:
            self._flush()  # ... acknowledged before the offsets that cover them
        # 3. input offsets. Under exactly-once the transaction's commit first delivers every
        # record produced in it (librdkafka flushes, serving the delivery reports, and fails the
        # commit on a failed delivery), so the offsets travel while the records are in flight:
        # a flush of its own would only put one more broker round trip on every batch.
        try:
            self.offsets.commit(offsets)
        except KafkaException:
            # A failed delivery is the cause, and says more than the commit's "must abort"
            # (a record too large stops the worker instead of being retried for ever).
            self._raise_delivery_failure()
            raise
        self._write_stores()  # 4. RocksDB + changelog checkpoint, one write batch per table

    def abort(self) -> bool:
        """Forgets the batch: nothing of it reaches RocksDB. True if the producer must be
        replaced to end the batch's transaction (exactly-once)."""
        renew = self.offsets.abort()
        self._forget()
        return renew

    def _forget(self) -> None:
        for table in Table:
            self._writes[table].clear()
            self._changelog_next[table].clear()
        self._delivery_failures.clear()

    def _send_changelog(self) -> None:
        for table, writes in self._writes.items():
            topic = self.changelog_topic(table)
            for write in writes.values():
                # Same partition number as the source record: the table is co-partitioned.
                self.sender.send(topic, write.key.encode(), write.value, partition=write.partition)

    def _flush(self) -> None:
        """Every record produced so far is acknowledged (or the batch is not committed)."""
        remaining = self.sender.producer.flush(COMMIT_TIMEOUT_S)
        if remaining:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, f"{remaining} records not delivered")
            )
        self._raise_delivery_failure()

    def _raise_delivery_failure(self) -> None:
        if self._delivery_failures:
            failure = self._delivery_failures[0]
            self._delivery_failures.clear()
            raise KafkaException(failure)

    def _write_stores(self) -> None:
        for table in Table:
            writes = self._writes[table]
            checkpoints = self._changelog_next[table]
            if writes or checkpoints:
                self.stores[table].write(
                    ((w.key, w.value) for w in writes.values()), dict(checkpoints)
                )
            writes.clear()
            checkpoints.clear()
