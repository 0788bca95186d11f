"""A background reader of every partition of one topic, for API handlers that answer from a
topic (privacy receipts, identity operation outcomes): assigned partitions, no group commits."""

from __future__ import annotations

import logging
import threading
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from omnid.config import Settings

log = logging.getLogger("omnid.follower")


class TopicFollower:
    """Reads `topic` in a daemon thread and hands each record to `take`: from the beginning,
    or (`from_end`) from its end as it is when the follower starts."""

    def __init__(self, settings: Settings, topic: str, name: str, from_end: bool = False) -> None:
        self.topic = topic
        self._name = name
        self._from_end = from_end
        self._config = {
            **settings.kafka_client_config(),
            "group.id": f"omnid-{name}-{uuid.uuid4().hex}",  # assigned, never committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,  # how it knows it has read what was there (caught up)
        }
        self._stop = threading.Event()
        self._positioned = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, message: Message) -> None:
        """One record of the topic (errors and end-of-partition events are never passed)."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._follow, name=f"omnid-{self._name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def wait_positioned(self, timeout: float) -> bool:
        """True once the follower reads from fixed offsets: a later record will not be missed."""
        return self._positioned.wait(timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        """True once every partition has been read to its end once: what was on the topic
        when the follower started has all been taken."""
        return self._caught_up.wait(timeout)

    def _follow(self) -> None:
        consumer = Consumer(self._config)
        try:
            starts = self._starts(consumer)
            if starts is None:
                return
            consumer.assign(starts)
            self._positioned.set()
            not_yet_at_end = {start.partition for start in starts}
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.5):
                    error = message.error()
                    if error is None:
                        self.take(message)
                    elif error.code() == KafkaError._PARTITION_EOF:
                        not_yet_at_end.discard(message.partition())
                        if not not_yet_at_end:
                            self._caught_up.set()
                    else:
                        log.warning("%s: %s", self.topic, error.str())
        finally:
            consumer.close()

    def _starts(self, consumer: Consumer) -> list[TopicPartition] | None:
        """Where to read each partition from, once the topic is there (None: stopped first)."""
        while not self._stop.is_set():
            try:
                metadata = consumer.list_topics(self.topic, timeout=2).topics.get(self.topic)
                if metadata is None or metadata.error or not metadata.partitions:
                    raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
                return [
                    TopicPartition(self.topic, p, self._start_of(consumer, p))
                    for p in metadata.partitions
                ]
            except KafkaException:
                self._stop.wait(1.0)
        return None

    def _start_of(self, consumer: Consumer, partition: int) -> int:
        if not self._from_end:
            return 0
        _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), 5)
        return int(high)
