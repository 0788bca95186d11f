"""The worker runtime's metrics: group membership and readiness, commit progress (consumer lag),
and outages (broker waits, batches processed again).

Lag is labelled by the canonical name of one of our topics (`PipelineTopics.under("")`, without
the OMNID_TOPIC_PREFIX a test copy adds) and the partition number; anything else is `other`.
"""

from __future__ import annotations

import dataclasses
from contextlib import suppress
from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from omnid.observability.metrics import OTHER
from omnid.pipeline.topic_names import PipelineTopics

_MAX_PARTITION_LABEL = 1023


def _topic_names(topics: PipelineTopics) -> frozenset[str]:
    names: set[str] = set()
    for field in dataclasses.fields(topics):
        if field.name == "prefix":
            continue
        value = getattr(topics, field.name)
        names.update(value if isinstance(value, tuple) else (value,))
    return frozenset(names)


TOPICS = _topic_names(PipelineTopics.under(""))


def topic_label(topic: str) -> str:
    """The canonical topic name, without the OMNID_TOPIC_PREFIX a test copy adds; else `other`."""
    for known in TOPICS:
        if topic == known or topic.endswith("." + known):
            return known
    return OTHER


def partition_label(partition: int) -> str:
    return str(partition) if 0 <= partition <= _MAX_PARTITION_LABEL else OTHER


class RuntimeMetrics:
    """The runtime's metric objects, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.consumer_lag = Gauge(
            "omnid_consumer_lag_messages",
            "Messages between the end of a partition and this worker's committed offset.",
            ["topic", "partition"],
            registry=registry,
        )
        self.rebalances = Counter(
            "omnid_rebalances_total",
            "Consumer group rebalances this worker took part in.",
            registry=registry,
        )
        self.ready = Gauge(
            "omnid_ready",
            "1 when this worker serves lookups (its tables are recovered), else 0.",
            registry=registry,
        )
        self.broker_wait = Gauge(
            "omnid_broker_wait",
            "1 while this worker waits out a retriable Kafka error (broker or leader lost).",
            registry=registry,
        )
        self.batches_retried = Counter(
            "omnid_batches_retried_total",
            "Batches aborted by a retriable Kafka error and processed again.",
            registry=registry,
        )

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        labels = {"topic": topic_label(topic), "partition": partition_label(partition)}
        self.consumer_lag.labels(**labels).set(max(0, lag))

    def forget_consumer_lag(self, topic: str, partition: int) -> None:
        """Drop the series of a partition this worker no longer owns, so no stale lag is
        reported."""
        with suppress(KeyError):
            self.consumer_lag.remove(topic_label(topic), partition_label(partition))


@cache
def runtime_metrics() -> RuntimeMetrics:
    """This process's runtime metrics, on the registry `observability.metrics.render` exposes."""
    return RuntimeMetrics(REGISTRY)
