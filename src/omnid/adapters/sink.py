"""Produce to Kafka and learn, per message, when the broker has it: the adapters' only exit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from omnid.contracts.producer import OutputSender
from omnid.errors import OmnidError


class DeliveryFailed(OmnidError):
    """Kafka did not acknowledge a message; the caller must not report it as accepted."""


class EventSink:
    """Wraps an idempotent producer; `send` returns a future resolved by the delivery report.

    A background thread serves delivery callbacks, so asyncio handlers and plain scripts can both
    wait on the futures (asyncio via `asyncio.wrap_future`).
    """

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._sender = OutputSender(producer)
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_callbacks, name="omnid-sink", daemon=True
        )
        self._poller.start()

    def _serve_callbacks(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def send(self, topic: str, key: bytes | None, value: bytes) -> Future[None]:
        return self.send_all(topic, [(key, value)])

    def send_all(self, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> Future[None]:
        """One future for many messages: resolved when every one is acknowledged, failed as
        soon as one is not. (One future per request keeps the event-loop wake-ups per request,
        not per event.)"""
        delivered: Future[None] = Future()
        outstanding = [len(messages)]
        lock = threading.Lock()

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if delivered.done():
                return
            if error is not None:
                delivered.set_exception(DeliveryFailed(f"{topic}: {error.str()}"))
                return
            with lock:
                outstanding[0] -= 1
                finished = outstanding[0] == 0
            if finished:
                delivered.set_result(None)

        if not messages:
            delivered.set_result(None)
        for key, value in messages:
            if not self._produce(topic, key, value, on_delivery, delivered):
                break
        return delivered

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        on_delivery: Callable[[KafkaError | None, Message], None],
        delivered: Future[None],
    ) -> bool:
        try:
            self._sender.send(topic, key, value, on_delivery=on_delivery)
            return True
        except KafkaException as error:
            if not delivered.done():
                delivered.set_exception(DeliveryFailed(f"{topic}: {error}"))
            return False

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still in flight."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> None:
        if self._closed.is_set():
            return
        self.flush(timeout)
        self._closed.set()
        self._poller.join()
        # Let librdkafka go now: a closed sink still referenced (by an application's handlers)
        # would otherwise keep reconnecting to a broker that may be gone, logging each attempt.
        del self._sender, self._producer

    def __enter__(self) -> EventSink:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
