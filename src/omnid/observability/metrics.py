"""The worker's Prometheus metrics, the label sets and helpers every process's metrics share,
and the one exposition path (`render`). The collector's own are in adapters/collector_metrics.py.

Label values come only from closed sets (channels, rejection reasons, stages, our own topics and
their partitions); anything outside a set is recorded as `other`, so a bug or hostile input can
never create an unbounded number of series, and no identifier value ever becomes a label.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import suppress
from enum import StrEnum
from functools import cache
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from omnid.contracts.channel_event import Channel
from omnid.errors import RejectionReason
from omnid.identity.normalisers import IdentifierRejection
from omnid.identity.refusals import BY_IDENTIFIER_TYPE, Refusal
from omnid.identity.requests import PrivacyKind, ReceiptStatus
from omnid.identity.state import IdentifierStatus
from omnid.kafka.stages import Table

OTHER = "other"

# `_created` timestamps double the series count and no dashboard or alert of ours reads them.
disable_created_metrics()


class Stage(StrEnum):
    """The three processing stages of a worker (ARCHITECTURE.md section 2)."""

    INGEST = "ingest"
    IDENTITY = "identity"
    PROFILE = "profile"


_MAX_PARTITION_LABEL = 1023

# Latency buckets span one stream hop (milliseconds) to a worker catching up after a restart.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
IDENTIFIER_COUNT_BUCKETS = (1, 2, 3, 4, 5, 8, 13, 21, 50, 100)
RECOVERY_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def label_values(enum: Iterable[StrEnum]) -> frozenset[str]:
    return frozenset(member.value for member in enum)


CHANNELS = label_values(Channel)
REJECTION_REASONS = label_values(RejectionReason)
# What the normalisers reject, plus identifiers the graph refuses to link because they are
# suppressed (erased customers).
SUPPRESSED = IdentifierStatus.SUPPRESSED.value
IDENTIFIER_REJECTIONS = label_values(IdentifierRejection) | {SUPPRESSED}
# Merge refusals about an identifier type (`limit:<type>`, `weak_link:<type>`) are labels; the
# default types here, a worker adds its rules' own types with allow_identifier_types().
IDENTIFIER_TYPES = frozenset(
    {"user_id", "email", "phone", "anonymous_id", "device_id", "loyalty_id", "crm_id"}
    | {"pos_customer_id"}
)
_MAX_IDENTIFIER_TYPES = 64
_identifier_types: set[str] = set(IDENTIFIER_TYPES)


def merge_refusals() -> frozenset[str]:
    return frozenset(
        str(Refusal(kind, identifier_type))
        for kind in BY_IDENTIFIER_TYPE
        for identifier_type in _identifier_types
    )


def allow_identifier_types(types: Iterable[str]) -> None:
    """Identifier types of the loaded rules become label values (the rules file bounds them)."""
    for identifier_type in types:
        if len(_identifier_types) < _MAX_IDENTIFIER_TYPES:
            _identifier_types.add(identifier_type)


TOPICS = frozenset(
    {f"omnid.events.{channel}" for channel in CHANNELS}
    | {
        "omnid.identity-commands",
        "omnid.profile-commands",
        "omnid.profile-updates",
        "omnid.identity-changelog",
        "omnid.dead-letter",
        "omnid.privacy-requests",
        "omnid.privacy-receipts",
    }
)


class WorkerMetrics:
    """A worker's metric objects, registered on one registry (the process default in production)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_ingested = Counter(
            "omnid_events_ingested_total",
            "Valid channel events a worker decoded and turned into identity commands, by channel.",
            ["channel"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "omnid_dead_letters_total",
            "Input records sent to omnid.dead-letter, by rejection reason.",
            ["reason"],
            registry=registry,
        )
        self.identifiers_rejected = Counter(
            "omnid_identifiers_rejected_total",
            "Identifiers dropped from otherwise valid events, by reason.",
            ["reason"],
            registry=registry,
        )
        self.lookups_rate_limited = Counter(
            "omnid_lookups_rate_limited_total",
            "Lookup API requests answered 429 because their client was over its rate.",
            registry=registry,
        )
        self.events_suppressed = Counter(
            "omnid_events_suppressed_total",
            "Events dropped because every usable identifier they carried is suppressed (erased "
            "customers); their content goes nowhere, not even to the dead-letter topic.",
            registry=registry,
        )
        self.privacy_receipts = Counter(
            "omnid_privacy_receipts_total",
            "Privacy request receipts sent, by kind (erase, suppress, unsuppress, export) and "
            "status (accepted, completed, failed).",
            ["kind", "status"],
            registry=registry,
        )
        self.profiles_created = Counter(
            "omnid_profiles_created_total", "Profiles created for new customers.", registry=registry
        )
        self.merges = Counter(
            "omnid_merges_total", "Profiles merged into an older profile.", registry=registry
        )
        self.merges_refused = Counter(
            "omnid_merges_refused_total",
            "Merges refused (the profiles stay apart), by reason.",
            ["reason"],
            registry=registry,
        )
        self.identifiers_quarantined = Counter(
            "omnid_identifiers_quarantined_total",
            "Identifier values quarantined as generic (claimed by quarantine_after known profiles "
            "within the window; they stop linking and the merges they made are undone), by type.",
            ["type"],
            registry=registry,
        )
        self.active_profiles = Gauge(
            "omnid_active_profiles",
            "Active profiles in the partitions this worker owns (sum over workers for the total).",
            registry=registry,
        )
        self.profile_identifiers = Histogram(
            "omnid_profile_identifiers",
            "Identifiers held by a profile, observed on every profile snapshot published.",
            buckets=IDENTIFIER_COUNT_BUCKETS,
            registry=registry,
        )
        self.profile_updates = Counter(
            "omnid_profile_updates_total",
            "Profile snapshots and tombstones published to omnid.profile-updates.",
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "omnid_end_to_end_latency_seconds",
            "Time from an event's receipt (received_at) to the profile update it caused.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stage_processing = Histogram(
            "omnid_stage_processing_seconds",
            "Mean time a stage spends handling one record, observed once per batch and stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "omnid_consumer_lag_messages",
            "Messages between the end of a partition and this worker's committed offset.",
            ["topic", "partition"],
            registry=registry,
        )
        self.rocksdb_size = Gauge(
            "omnid_rocksdb_size_bytes",
            "Bytes on disk of a RocksDB table on this worker, by table.",
            ["table"],
            registry=registry,
        )
        self.rebalances = Counter(
            "omnid_rebalances_total",
            "Consumer group rebalances this worker took part in.",
            registry=registry,
        )
        self.table_recovery = Histogram(
            "omnid_table_recovery_seconds",
            "Time to rebuild tables from their changelogs after a rebalance.",
            buckets=RECOVERY_BUCKETS,
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
        self.stale_lookups = Counter(
            "omnid_lookups_stale_total",
            "Lookups answered from a local copy that may be behind (marked stale: true).",
            registry=registry,
        )
        self.batches_retried = Counter(
            "omnid_batches_retried_total",
            "Batches aborted by a retriable Kafka error and processed again.",
            registry=registry,
        )
        # Series of closed label sets exist from start-up at 0, so rate() and increase() see the
        # first event instead of a series appearing out of nowhere.
        for channel in CHANNELS:
            self.events_ingested.labels(channel=channel)
        for reason in REJECTION_REASONS:
            self.dead_letters.labels(reason=reason)
        for reason in IDENTIFIER_REJECTIONS:
            self.identifiers_rejected.labels(reason=reason)
        for reason in merge_refusals():
            self.merges_refused.labels(reason=reason)
        for stage in Stage:
            self.stage_processing.labels(stage=stage.value)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("omnid")
    except PackageNotFoundError:
        return "unknown"


@cache
def build_info() -> None:
    Info("omnid_build", "omnid version running in this process.", registry=REGISTRY).info(
        {"version": _installed_version()}
    )


@cache
def worker_metrics() -> WorkerMetrics:
    """The worker metrics of this process; registered on first use (call it at start-up)."""
    build_info()
    return WorkerMetrics(REGISTRY)


def bounded(value: str, allowed: frozenset[str]) -> str:
    """`value` if it is one of the label values `allowed`, else `other`."""
    return value if value in allowed else OTHER


def channel_label(channel: str) -> str:
    return bounded(str(channel), CHANNELS)


def topic_label(topic: str) -> str:
    """The canonical topic name, without the OMNID_TOPIC_PREFIX a test copy adds; else `other`."""
    for known in TOPICS:
        if topic == known or topic.endswith("." + known):
            return known
    return OTHER


def partition_label(partition: int) -> str:
    return str(partition) if 0 <= partition <= _MAX_PARTITION_LABEL else OTHER


# ---- worker ---------------------------------------------------------------------------------


def record_event_ingested(
    channel: str, metrics: WorkerMetrics | None = None, count: int = 1
) -> None:
    (metrics or worker_metrics()).events_ingested.labels(channel=channel_label(channel)).inc(count)


def record_dead_letter(reason: str, metrics: WorkerMetrics | None = None, count: int = 1) -> None:
    label = bounded(str(reason), REJECTION_REASONS)
    (metrics or worker_metrics()).dead_letters.labels(reason=label).inc(count)


def record_identifier_rejected(
    reason: str, metrics: WorkerMetrics | None = None, count: int = 1
) -> None:
    label = bounded(str(reason), IDENTIFIER_REJECTIONS)
    (metrics or worker_metrics()).identifiers_rejected.labels(reason=label).inc(count)


def record_lookup_rate_limited(metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).lookups_rate_limited.inc()


_PRIVACY_KINDS = label_values(PrivacyKind)
_RECEIPT_STATUSES = label_values(ReceiptStatus)


def record_privacy_receipt(
    kind: str, status: str, metrics: WorkerMetrics | None = None, count: int = 1
) -> None:
    (metrics or worker_metrics()).privacy_receipts.labels(
        kind=bounded(kind, _PRIVACY_KINDS), status=bounded(status, _RECEIPT_STATUSES)
    ).inc(count)


def record_identity_change(
    kind: str, reason: str | None, metrics: WorkerMetrics | None = None, count: int = 1
) -> None:
    """Counts merges, refusals and quarantines from an IdentityChange's `kind` and `reason`."""
    if kind == "merged":
        record_merge(metrics, count)
    elif kind == "merge_refused":
        record_merge_refused(reason or OTHER, metrics, count)
    elif kind == "quarantined":
        # reason `quarantined:<type>`: the type is a label bounded like the refusals' types
        identifier_type = bounded((reason or "").partition(":")[2], frozenset(_identifier_types))
        (metrics or worker_metrics()).identifiers_quarantined.labels(type=identifier_type).inc(
            count
        )


def record_merge(metrics: WorkerMetrics | None = None, count: int = 1) -> None:
    (metrics or worker_metrics()).merges.inc(count)


def record_merge_refused(reason: str, metrics: WorkerMetrics | None = None, count: int = 1) -> None:
    label = bounded(str(reason), merge_refusals())
    (metrics or worker_metrics()).merges_refused.labels(reason=label).inc(count)


def record_profile_update(
    identifier_count: int | None,
    received_at_ms: Iterable[int] = (),
    now_s: float | None = None,
    metrics: WorkerMetrics | None = None,
) -> None:
    """One ProfileUpdate published: its size (None for a tombstone) and, for each event it
    shows, the latency since that event's `received_at` (epoch milliseconds)."""
    worker = metrics or worker_metrics()
    worker.profile_updates.inc()
    if identifier_count is not None:
        worker.profile_identifiers.observe(identifier_count)
    now = time.time() if now_s is None else now_s
    for received in received_at_ms:
        # The collector's and the worker's clocks may differ slightly; never observe < 0.
        worker.end_to_end_latency.observe(max(0.0, now - received / 1000.0))


def set_active_profiles(count: int, metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).active_profiles.set(count)


def observe_stage(stage: Stage, seconds: float, metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).stage_processing.labels(stage=stage.value).observe(seconds)


class BatchTally:
    """What one batch did, counted in plain dicts on the per-record path and published to the
    Prometheus objects once, when the batch is committed: their label lookups, locks and
    context managers cost more than the work they counted (py-spy: ~10% of a worker's CPU).
    An aborted batch is `reset` and counted again when it is replayed."""

    __slots__ = (
        "dead_letters",
        "events_suppressed",
        "identifiers_rejected",
        "identity_changes",
        "ingested",
        "profiles_created",
        "receipts",
        "stage_records",
        "stage_seconds",
        "tombstones",
        "updates",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.ingested: dict[str, int] = {}
        self.dead_letters: dict[str, int] = {}
        self.identifiers_rejected: dict[str, int] = {}
        self.identity_changes: dict[tuple[str, str | None], int] = {}
        self.profiles_created = 0
        # privacy: events left with nothing but suppressed identifiers; receipts (kind, status)
        self.events_suppressed = 0
        self.receipts: dict[tuple[str, str], int] = {}
        self.stage_seconds = dict.fromkeys(Stage, 0.0)
        self.stage_records = dict.fromkeys(Stage, 0)
        # (identifiers held, received_at of each event the update shows), one per update
        self.updates: list[tuple[int, list[int]]] = []
        self.tombstones = 0

    @staticmethod
    def count(tally: dict[Any, int], label: Any) -> None:
        tally[label] = tally.get(label, 0) + 1

    def stage(self, stage: Stage, seconds: float) -> None:
        self.stage_seconds[stage] += seconds
        self.stage_records[stage] += 1

    def publish(self, metrics: WorkerMetrics | None = None, now_s: float | None = None) -> None:
        worker = metrics or worker_metrics()
        for channel, n in self.ingested.items():
            record_event_ingested(channel, worker, n)
        for reason, n in self.dead_letters.items():
            record_dead_letter(reason, worker, n)
        for reason, n in self.identifiers_rejected.items():
            record_identifier_rejected(reason, worker, n)
        for (kind, reason), n in self.identity_changes.items():
            record_identity_change(kind, reason, worker, n)
        if self.profiles_created:
            worker.profiles_created.inc(self.profiles_created)
        if self.events_suppressed:
            worker.events_suppressed.inc(self.events_suppressed)
        for (kind, status), n in self.receipts.items():
            record_privacy_receipt(kind, status, worker, n)
        now = time.time() if now_s is None else now_s
        for identifier_count, received in self.updates:
            record_profile_update(identifier_count, received, now, worker)
        for _ in range(self.tombstones):
            record_profile_update(None, metrics=worker)
        for stage, records in self.stage_records.items():
            if records:
                observe_stage(stage, self.stage_seconds[stage] / records, worker)
        self.reset()


def set_consumer_lag(
    topic: str, partition: int, lag: int, metrics: WorkerMetrics | None = None
) -> None:
    labels = {"topic": topic_label(topic), "partition": partition_label(partition)}
    (metrics or worker_metrics()).consumer_lag.labels(**labels).set(max(0, lag))


def forget_consumer_lag(topic: str, partition: int, metrics: WorkerMetrics | None = None) -> None:
    """Drop the series of a partition this worker no longer owns, so no stale lag is reported."""
    gauge = (metrics or worker_metrics()).consumer_lag
    with suppress(KeyError):
        gauge.remove(topic_label(topic), partition_label(partition))


def set_rocksdb_size(table: Table, size_bytes: int, metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).rocksdb_size.labels(table=table.value).set(size_bytes)


def record_rebalance(metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).rebalances.inc()


def record_table_recovery(seconds: float, metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).table_recovery.observe(seconds)


def set_worker_ready(ready: bool, metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).ready.set(1 if ready else 0)


def set_broker_wait(waiting: bool, metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).broker_wait.set(1 if waiting else 0)


def record_stale_lookup(metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).stale_lookups.inc()


def record_batch_retried(metrics: WorkerMetrics | None = None) -> None:
    (metrics or worker_metrics()).batches_retried.inc()


# ---- exposition -----------------------------------------------------------------------------


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The text exposition body and its content type, for any HTTP framework."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
