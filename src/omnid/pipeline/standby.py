"""Standby replicas: warm copies of table partitions this worker does not own, kept by tailing
their changelogs, so that taking a partition over restores seconds of changelog, not the table,
and the lookup API can answer (marked stale) while the partition's owner is away.

Which partitions a worker stands by for is decided by every worker alone, from the group as the
roster topic tells it (omnid.pipeline.membership): for each stateful partition number, the
`replicas` members other than its owner that rank highest by a hash of (member name, partition
number) — rendezvous hashing. Every worker computes the same answer; a member joining or
leaving moves only the standbys it must;
co-partitioned tables (same partition number) stand by on the same members; with `replicas` at
least the number of other members, a worker stands by for every partition it does not own.

The tailing writes each batch of changelog records and the new checkpoint in one RocksDB write
batch, exactly as a restore does, so a partition this worker is given later is restored from
where its standby stopped. Before a partition's restore the runtime `release`s it: from then on
the standby writes nothing to it (ownership and standby never write the same partition).
Model read for the idea: Kafka Streams' standby tasks (num.standby.replicas).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from omnid.kafka.stages import Table
from omnid.pipeline.membership import GroupView
from omnid.pipeline.restore import CONSUMER_QUEUE_KBYTES
from omnid.pipeline.roster import Roster
from omnid.pipeline.state_metrics import StateMetrics, state_metrics
from omnid.pipeline.state_store import TableStore
from omnid.pipeline.topic_names import PipelineTopics

log = logging.getLogger(__name__)

# How often the standby partitions are chosen again from the roster.
REFRESH_EVERY_S = 5.0
# One tailing poll waits at most this long for changelog records.
TAIL_POLL_S = 0.2
TAIL_BATCH = 1000


def _rank(member: str, partition: int) -> int:
    digest = hashlib.blake2b(f"{member}\0{partition}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def standby_members(
    partition: int, owner: str | None, members: Iterable[str], replicas: int
) -> list[str]:
    """The members that stand by for `partition` (owned by `owner`), highest rank first: pure,
    the same on every worker (the lookup API finds a standby with it)."""
    others = sorted(set(members) - {owner}, key=lambda n: _rank(n, partition), reverse=True)
    return others[: max(replicas, 0)]


def standby_partitions(
    me: str, owners: Mapping[tuple[str, int], str], members: Iterable[str], replicas: int
) -> set[tuple[str, int]]:
    """The source partitions (topic, partition) that `me` stands by for, given every owned
    source partition's owner and the group's members."""
    names = set(members)
    return {
        (topic, partition)
        for (topic, partition), owner in owners.items()
        if me in standby_members(partition, owner, names, replicas)
    }


@dataclass(frozen=True)
class StandbyLag:
    """How far one standby table partition is behind its changelog (records and markers)."""

    table: Table
    partition: int
    lag: int


class StandbyReplicas:
    """Tails the changelogs of the partitions this worker stands by for, in a daemon thread."""

    def __init__(
        self,
        client_config: dict[str, str],
        group: str,
        me: str,
        stores: dict[Table, TableStore],
        topics: PipelineTopics,
        replicas: int,
        roster: Roster,
        metrics: StateMetrics | None = None,
    ) -> None:
        self.group = group
        self.roster = roster
        self.metrics = metrics or state_metrics()
        self.me = me
        self.stores = stores
        self.topics = topics
        self.replicas = replicas
        self._client_config = dict(client_config)
        self._changelogs = {topics.state_changelog(table): table for table in Table}
        self._lock = threading.Lock()
        # Changelog partitions (topic, partition): owned by this worker (never tailed), tailed
        # now, assigned to the tailing consumer, and each one's lag at the last poll.
        self._owned: set[tuple[str, int]] = set()
        self._wanted: set[tuple[str, int]] = set()
        self._assigned: set[tuple[str, int]] = set()
        self._lags: dict[tuple[str, int], int] = {}
        # Every partition of the topics whose stages keep tables (known once the thread runs).
        self._stateful: set[tuple[str, int]] = set()
        self.applied = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the runtime and the lookup API ask -----------------------------------------------

    def start(self) -> None:
        if self.replicas <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="omnid-standby", daemon=True)
        self._thread.start()

    def own(self, tables: Iterable[tuple[Table, int]]) -> None:
        """This worker owns these table partitions now: the standby stops writing them, and
        once this returns it never writes them again until they are `disown`ed."""
        sources = self._sources(tables)
        with self._lock:
            self._owned |= sources
            self._wanted -= sources
            self._forget_lags(sources)

    def disown(self, tables: Iterable[tuple[Table, int]]) -> None:
        """These table partitions were revoked: they may be stood by for again."""
        with self._lock:
            self._owned -= self._sources(tables)

    def _sources(self, tables: Iterable[tuple[Table, int]]) -> set[tuple[str, int]]:
        return {(self.topics.state_changelog(table), partition) for table, partition in tables}

    def lag(self, table: Table, partition: int) -> int | None:
        """Records (and transaction markers) the standby copy is behind; None if not a standby."""
        with self._lock:
            return self._lags.get((self.topics.state_changelog(table), partition))

    def lags(self) -> list[StandbyLag]:
        with self._lock:
            return [
                StandbyLag(self._changelogs[topic], partition, lag)
                for (topic, partition), lag in sorted(self._lags.items())
            ]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self._client_config,
                "group.id": f"{self.group}.standby.{self.me}",  # assigned, never committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "queued.max.messages.kbytes": CONSUMER_QUEUE_KBYTES,
            }
        )
        next_refresh = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if time.monotonic() >= next_refresh:
                        next_refresh = time.monotonic() + REFRESH_EVERY_S
                        self._choose(consumer)
                    self._tail(consumer)
                except Exception:  # a standby is an optimisation: it never stops the worker
                    log.exception("standby replicas: step failed; trying again")
                    self._stop.wait(1.0)
        finally:
            consumer.close()

    def _choose(self, consumer: Consumer) -> None:
        """Recomputes the standby partitions from a settled group: every stateful partition
        owned by exactly one member (during a rebalance or a failover the ones held stay: that
        is when they are needed)."""
        if not self._stateful:
            self._stateful = self._stateful_partitions(consumer)
        view = self.roster.view(self._stateful)
        if not self._stateful or not view.settled:
            return
        chosen = self._standby_changelogs(view)
        with self._lock:
            wanted = chosen - self._owned
            added = wanted - self._wanted
            if added or wanted != self._wanted:
                log.info("standing by for %d table partitions (%d new)", len(wanted), len(added))
            self._forget_lags(self._wanted - wanted)
            self._wanted = wanted

    def _forget_lags(self, sources: Iterable[tuple[str, int]]) -> None:
        """No lag is reported for a partition no longer stood by for (the lock is held)."""
        for topic, partition in sources:
            if self._lags.pop((topic, partition), None) is not None:
                self.metrics.forget_standby_lag(self._changelogs[topic], partition)

    def _stateful_partitions(self, consumer: Consumer) -> set[tuple[str, int]]:
        """Empty until the broker answered with every stateful topic (a metadata request)."""
        found = set()
        for topic in {self.topics.source_of(table) for table in Table}:
            try:
                metadata = consumer.list_topics(topic, timeout=2).topics.get(topic)
            except KafkaException:  # broker away: asked again at the next refresh
                return set()
            if metadata is None or metadata.error is not None or not metadata.partitions:
                return set()
            found |= {(topic, partition) for partition in metadata.partitions}
        return found

    def _standby_changelogs(self, view: GroupView) -> set[tuple[str, int]]:
        owners = {
            source: member.name
            for member in view.members
            for source in member.partitions
            if source in self._stateful
        }
        chosen = standby_partitions(self.me, owners, (m.name for m in view.members), self.replicas)
        return {
            (self.topics.state_changelog(table), partition)
            for topic, partition in chosen
            for table in self.topics.tables_of(topic)
        }

    def _tail(self, consumer: Consumer) -> None:
        with self._lock:
            wanted = set(self._wanted)
        if wanted != self._assigned:
            # From each store's checkpoint: where a restore or an earlier standby stopped.
            consumer.assign(
                [
                    TopicPartition(topic, p, self.stores[self._changelogs[topic]].checkpoint(p))
                    for topic, p in sorted(wanted)
                ]
            )
            self._assigned = wanted
        if not wanted:
            self._stop.wait(TAIL_POLL_S)
            return
        messages = consumer.consume(TAIL_BATCH, timeout=TAIL_POLL_S)
        positions = consumer.position([TopicPartition(t, p) for t, p in sorted(wanted)])
        with self._lock:
            self._apply(consumer, messages, positions)

    def _apply(
        self, consumer: Consumer, messages: list[Message], positions: list[TopicPartition]
    ) -> None:
        """Writes what was read of partitions still wanted (the lock is held: `release` waits)."""
        entries: dict[tuple[str, int], list[tuple[str, bytes | None]]] = {}
        for message in messages:
            source = (message.topic(), message.partition())
            if message.error() is None and message.key() is not None and source in self._wanted:
                entries.setdefault(source, []).append((message.key().decode(), message.value()))
        for tp in positions:
            source = (tp.topic, tp.partition)
            if source not in self._wanted:
                continue
            table = self._changelogs[tp.topic]
            store = self.stores[table]
            applied = entries.get(source, [])
            # Before its first record the consumer has no position: the checkpoint stands.
            at = tp.offset if tp.offset >= 0 else store.checkpoint(tp.partition)
            if applied or at != store.checkpoint(tp.partition):
                store.write(applied, {tp.partition: at})
                self.applied += len(applied)
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                self._lags[source] = max(0, high - at)
                self.metrics.set_standby_lag(table, tp.partition, self._lags[source])
