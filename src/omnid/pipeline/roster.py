"""The roster topic's shell: this worker publishes its own record (omnid.pipeline.membership) and
follows everyone's, in one daemon thread with a plain producer and an assigned consumer.
Neither talks to the group coordinator, so nothing here can hit librdkafka's admin-request
abort when the broker goes away (see omnid.pipeline.membership)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from omnid.pipeline.membership import (
    HEARTBEAT_S,
    INCARNATION_HEADER,
    GroupMember,
    GroupView,
    RosterLog,
    RosterRecord,
    encode_record,
    roster_key,
)

log = logging.getLogger(__name__)

FOLLOW_POLL_S = 0.2
# On SIGTERM the tombstone gets this long to reach the broker (the exit stays within seconds).
TOMBSTONE_FLUSH_S = 2.0


def _quiet(error: KafkaError) -> None:
    # The worker's own clients report broker loss (BrokerWait); these would only repeat it.
    log.debug("roster client: %s", error.str())


class Roster:
    """This worker's entry on the roster topic, and the group as every entry tells it."""

    def __init__(
        self, client_config: dict[str, str], topic: str, group: str, name: str, url: str
    ) -> None:
        self.topic = topic
        self.group = group
        self.name = name
        self.url = url
        self.incarnation = uuid.uuid4().hex
        self._config = dict(client_config)
        self._log = RosterLog(group)
        self._lock = threading.Lock()
        self._view = self._log.view()
        self._partitions: frozenset[tuple[str, int]] = frozenset()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None

    # -- what the runtime, the standby replicas and the lookup API ask ------------------------

    def start(self) -> None:
        self._producer = Producer(
            {
                **self._config,
                "error_cb": _quiet,
                "acks": "all",
                # In order, without the idempotent producer's states to recover after an
                # outage; a record repeated by a retry says the same thing again.
                "enable.idempotence": False,
                "max.in.flight.requests.per.connection": 1,
                "linger.ms": 0,
            }
        )
        self._changed.set()  # the first record at once
        self._thread = threading.Thread(target=self._run, name="omnid-roster", daemon=True)
        self._thread.start()

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """This worker's partitions now (after every assignment change): published at once."""
        self._partitions = frozenset(partitions)
        self._changed.set()

    def view(self, expected: Iterable[tuple[str, int]] | None = None) -> GroupView:
        """The group as the roster read so far tells it (settled against `expected`, if given)."""
        with self._lock:
            return self._view if expected is None else self._log.view(expected)

    def close(self) -> None:
        """Stops following and publishes a tombstone: peers drop this worker at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._producer is not None:
            self._producer.produce(
                self.topic,
                key=roster_key(self.group, self.name),
                value=None,
                headers=[(INCARNATION_HEADER, self.incarnation.encode())],
            )
            left = self._producer.flush(TOMBSTONE_FLUSH_S)
            if left:
                log.info("roster tombstone not delivered (broker away): peers expire this worker")

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self._config,
                "error_cb": _quiet,
                "group.id": f"{self.group}.roster.{self.incarnation}",  # assigned, never committed
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if (self._changed.is_set() or now >= next_beat) and self._publish():
                        next_beat = now + HEARTBEAT_S
                    self._follow(consumer)
                except Exception:  # the roster informs lookups and standbys: never stop the worker
                    log.exception("roster: step failed; trying again")
                    self._stop.wait(1.0)
        finally:
            consumer.close()

    def _publish(self) -> bool:
        """Queues this worker's record, unless the last one is still undelivered (broker away)
        and nothing changed: heartbeats do not pile up during an outage."""
        assert self._producer is not None
        self._producer.poll(0)
        changed = self._changed.is_set()
        if len(self._producer) and not changed:
            return False
        self._changed.clear()
        record = RosterRecord(
            self.group,
            GroupMember(self.name, self.url, tuple(sorted(self._partitions))),
            self.incarnation,
        )
        try:
            self._producer.produce(
                self.topic, key=roster_key(self.group, self.name), value=encode_record(record)
            )
        except BufferError:
            self._changed.set()  # try again on the next round
            return False
        return True

    def _follow(self, consumer: Consumer) -> None:
        messages = consumer.consume(500, timeout=FOLLOW_POLL_S)
        applied = False
        with self._lock:
            for message in messages:
                key, offset = message.key(), message.offset()
                if message.error() is not None or key is None or offset is None:
                    continue
                incarnation = dict(message.headers() or []).get(INCARNATION_HEADER)
                self._log.apply(
                    key,
                    message.value(),
                    offset,
                    message.timestamp()[1],
                    incarnation.decode() if isinstance(incarnation, bytes) else incarnation,
                )
                applied = True
            if applied:
                self._view = self._log.view()
