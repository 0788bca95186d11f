"""Reading a whole topic from outside the pipeline: `omnid tail`, the test harness and the
benchmarks all read through `read_records` (read-committed, every partition assigned, nothing
committed)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

_BATCH = 500
_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class TopicRecord:
    key: str
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int  # ms, as the record carries it
    partition: int


def read_records(
    config: Mapping[str, str],
    topic: str,
    *,
    from_beginning: bool = True,
    ends: Mapping[int, int] | None = None,
    idle_s: float = 0.0,
) -> Iterator[TopicRecord]:
    """The committed records of `topic` in arrival order: from the beginning (or only those that
    arrive from now on). Stops once every partition reached its offset in `ends` (when given),
    or when nothing arrived for `idle_s` seconds (0 = never: follow until the caller stops)."""
    consumer = Consumer(
        {
            **config,
            "group.id": f"omnid-read-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        remaining = {p: end for p, end in (ends or {}).items() if end > 0}
        idle_since = time.monotonic()
        while ends is None or remaining:
            batch = consumer.consume(_BATCH, timeout=_POLL_S)
            for message in batch:
                if message.error() is None:
                    yield TopicRecord(
                        (message.key() or b"").decode(errors="replace"),
                        message.value(),
                        list(message.headers() or []),
                        message.timestamp()[1],
                        message.partition(),
                    )
            if batch:
                idle_since = time.monotonic()
            elif idle_s and time.monotonic() - idle_since > idle_s:
                return
            if remaining:
                # Positions, not offsets seen: a transaction's commit marker takes an offset too.
                positions = consumer.position([TopicPartition(topic, p) for p in remaining])
                for position in positions:
                    if position.offset >= remaining[position.partition]:
                        del remaining[position.partition]
    finally:
        consumer.close()
