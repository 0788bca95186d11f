"""The one way omnid builds a Kafka producer: idempotent, acks=all, from Settings."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer

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


def produce_waiting(producer: Producer, topic: str, key: bytes | None, value: bytes | None) -> None:
    """Produce, waiting for queue space instead of failing when the client buffer is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)
