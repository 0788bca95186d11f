"""The processing stages' metrics — what ingest, identity and profile did with their records —
and `BatchTally`, which counts them per batch and publishes them once the batch is committed.

Label sets come from the enums that own their values: stages from `identity.stages.Stage` (plus
ingest, the stage of the channel topics, which keeps no table), identifier rejections from
`IdentifierRejection` and the suppressed status, merge refusals from `refusals.BY_IDENTIFIER_TYPE`
over the identifier types of the worker's rules (handed in: `allow_identifier_types`), privacy
receipts from `PrivacyKind`/`ReceiptStatus`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from omnid.identity.normalisers import IdentifierRejection
from omnid.identity.refusals import BY_IDENTIFIER_TYPE, Refusal
from omnid.identity.rendering import ChangeKind
from omnid.identity.requests import PrivacyKind, ReceiptStatus
from omnid.identity.stages import Stage
from omnid.identity.state import IdentifierStatus
from omnid.observability.metrics import (
    CHANNELS,
    LATENCY_BUCKETS,
    OTHER,
    REJECTION_REASONS,
    bounded,
    channel_label,
    label_values,
)

# The stage of the channel topics: it decodes events into commands and keeps no table.
INGEST = "ingest"
STAGES = frozenset({INGEST}) | label_values(Stage)

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
IDENTIFIER_COUNT_BUCKETS = (1, 2, 3, 4, 5, 8, 13, 21, 50, 100)

# What the normalisers reject, plus identifiers the graph refuses to link because they are
# suppressed (erased customers).
SUPPRESSED = IdentifierStatus.SUPPRESSED.value
IDENTIFIER_REJECTIONS = label_values(IdentifierRejection) | {SUPPRESSED}
# Merge refusals about an identifier type (`limit:<type>`, `weak_link:<type>`) and quarantines
# are labelled by the types of the rules; the rules file bounds them, and so does this.
_MAX_IDENTIFIER_TYPES = 64
_PRIVACY_KINDS = label_values(PrivacyKind)
_RECEIPT_STATUSES = label_values(ReceiptStatus)


def _merge_refusals(identifier_types: Iterable[str]) -> frozenset[str]:
    return frozenset(
        str(Refusal(kind, identifier_type))
        for kind in BY_IDENTIFIER_TYPE
        for identifier_type in identifier_types
    )


class StageMetrics:
    """The stages' metric objects, registered on `registry`, with `identifier_types` (of the
    rules) as the types their labels may name."""

    def __init__(self, registry: CollectorRegistry, identifier_types: Iterable[str] = ()) -> None:
        self.registry = registry
        self.identifier_types: frozenset[str] = frozenset()
        self.merge_refusals: frozenset[str] = frozenset()
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
        # Series of closed label sets exist from start-up at 0, so rate() and increase() see the
        # first event instead of a series appearing out of nowhere.
        for channel in CHANNELS:
            self.events_ingested.labels(channel=channel)
        for reason in REJECTION_REASONS:
            self.dead_letters.labels(reason=reason)
        for reason in IDENTIFIER_REJECTIONS:
            self.identifiers_rejected.labels(reason=reason)
        for stage in STAGES:
            self.stage_processing.labels(stage=stage)
        self.allow_identifier_types(identifier_types)

    def allow_identifier_types(self, types: Iterable[str]) -> None:
        """Identifier types of the loaded rules become label values; their refusal series
        exist from then on at 0."""
        allowed = set(self.identifier_types)
        for identifier_type in types:
            if len(allowed) < _MAX_IDENTIFIER_TYPES:
                allowed.add(identifier_type)
        self.identifier_types = frozenset(allowed)
        self.merge_refusals = _merge_refusals(self.identifier_types)
        for reason in self.merge_refusals:
            self.merges_refused.labels(reason=reason)

    def record_event_ingested(self, channel: str, count: int = 1) -> None:
        self.events_ingested.labels(channel=channel_label(channel)).inc(count)

    def record_dead_letter(self, reason: str, count: int = 1) -> None:
        self.dead_letters.labels(reason=bounded(str(reason), REJECTION_REASONS)).inc(count)

    def record_identifier_rejected(self, reason: str, count: int = 1) -> None:
        label = bounded(str(reason), IDENTIFIER_REJECTIONS)
        self.identifiers_rejected.labels(reason=label).inc(count)

    def record_privacy_receipt(self, kind: str, status: str, count: int = 1) -> None:
        self.privacy_receipts.labels(
            kind=bounded(kind, _PRIVACY_KINDS), status=bounded(status, _RECEIPT_STATUSES)
        ).inc(count)

    def record_identity_change(self, kind: str, reason: str | None, count: int = 1) -> None:
        """Counts merges, refusals and quarantines from an IdentityChange's `kind` and `reason`."""
        if kind == ChangeKind.MERGED:
            self.merges.inc(count)
        elif kind == ChangeKind.MERGE_REFUSED:
            self.record_merge_refused(reason or OTHER, count)
        elif kind == ChangeKind.QUARANTINED:
            # reason `quarantined:<type>`: the type is a label bounded like the refusals' types
            identifier_type = bounded((reason or "").partition(":")[2], self.identifier_types)
            self.identifiers_quarantined.labels(type=identifier_type).inc(count)

    def record_merge_refused(self, reason: str, count: int = 1) -> None:
        self.merges_refused.labels(reason=bounded(str(reason), self.merge_refusals)).inc(count)

    def record_profile_update(
        self,
        identifier_count: int | None,
        received_at_ms: Iterable[int] = (),
        now_s: float | None = None,
    ) -> None:
        """One ProfileUpdate published: its size (None for a tombstone) and, for each event it
        shows, the latency since that event's `received_at` (epoch milliseconds)."""
        self.profile_updates.inc()
        if identifier_count is not None:
            self.profile_identifiers.observe(identifier_count)
        now = time.time() if now_s is None else now_s
        for received in received_at_ms:
            # The collector's and the worker's clocks may differ slightly; never observe < 0.
            self.end_to_end_latency.observe(max(0.0, now - received / 1000.0))

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_processing.labels(stage=stage).observe(seconds)


@cache
def stage_metrics() -> StageMetrics:
    """This process's stage metrics, on the registry `observability.metrics.render` exposes."""
    return StageMetrics(REGISTRY)


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
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)
        self.stage_records = dict.fromkeys(STAGES, 0)
        # (identifiers held, received_at of each event the update shows), one per update
        self.updates: list[tuple[int, list[int]]] = []
        self.tombstones = 0

    @staticmethod
    def count(tally: dict[Any, int], label: Any) -> None:
        tally[label] = tally.get(label, 0) + 1

    def stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] += seconds
        self.stage_records[stage] += 1

    def publish(self, metrics: StageMetrics | None = None, now_s: float | None = None) -> None:
        stages = metrics or stage_metrics()
        for channel, n in self.ingested.items():
            stages.record_event_ingested(channel, n)
        for reason, n in self.dead_letters.items():
            stages.record_dead_letter(reason, n)
        for reason, n in self.identifiers_rejected.items():
            stages.record_identifier_rejected(reason, n)
        for (kind, change_reason), n in self.identity_changes.items():
            stages.record_identity_change(kind, change_reason, n)
        if self.profiles_created:
            stages.profiles_created.inc(self.profiles_created)
        if self.events_suppressed:
            stages.events_suppressed.inc(self.events_suppressed)
        for (kind, status), n in self.receipts.items():
            stages.record_privacy_receipt(kind, status, n)
        now = time.time() if now_s is None else now_s
        for identifier_count, received in self.updates:
            stages.record_profile_update(identifier_count, received, now)
        for _ in range(self.tombstones):
            stages.record_profile_update(None)
        for stage, records in self.stage_records.items():
            if records:
                stages.observe_stage(stage, self.stage_seconds[stage] / records)
        self.reset()
