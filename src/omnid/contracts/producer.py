"""The one way omnid builds a Kafka producer (idempotent, acks=all, from Settings) and the one
way it sends through one (`OutputSender`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from omnid.config import Settings


def producer_config(settings: Settings | None = None, **overrides: Any) -> dict[str, Any]:
    """Idempotence and acks=all mean a delivery report of success is a write that survives
    broker failover without duplicates from producer retries."""
    config: dict[str, Any] = dict((settings or Settings()).kafka_client_config())
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 30_000,
        }
    )
    config.update(overrides)
    return config


def make_producer(settings: Settings | None = None, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides))


# A delivery report: (error or None, the message as the broker acknowledged it).
DeliveryReport = Callable[[KafkaError | None, Message], None]
Headers = list[tuple[str, bytes]]


class OutputSender:
    """The one way omnid hands a record to a producer: every producer of the project (worker,
    adapters, harness, benchmarks) sends through one, so a full client queue is met the same
    way everywhere — serve delivery reports until there is room (backpressure) — and delivery
    reports reach one callback, `on_delivery`, unless a send names its own."""

    __slots__ = ("on_delivery", "producer")

    def __init__(self, producer: Producer, on_delivery: DeliveryReport | None = None) -> None:
        self.producer = producer
        self.on_delivery = on_delivery

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int = -1,  # -1: the producer's partitioner decides
        on_delivery: DeliveryReport | None = None,
    ) -> None:
        """Queues the record; KafkaException for one the client refuses (say, too large)."""
        callback = on_delivery or self.on_delivery
        while True:
            try:
                self.producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    partition=partition,
                    on_delivery=callback,
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def send_acknowledged(
        self, records: Iterable[tuple[str, bytes, bytes]], timeout_s: float = 30
    ) -> bool:
        """Sends (topic, key, value) records and waits for their delivery reports: True only if
        Kafka acknowledged every one within `timeout_s` (an API answers its caller from this)."""
        errors: list[KafkaError | None] = []
        sent = 0
        for topic, key, value in records:
            self.send(topic, key, value, on_delivery=lambda error, _m: errors.append(error))
            sent += 1
        self.producer.flush(timeout_s)
        return len(errors) == sent and all(error is None for error in errors)
