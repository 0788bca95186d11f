"""Metric recording functions: bounded labels, zero-initialised series, what each call counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from omnid.adapters import collector_metrics
from omnid.contracts.channel_event import Channel
from omnid.errors import RejectionReason
from omnid.identity.stages import Stage
from omnid.kafka.stages import Table
from omnid.observability import metrics
from omnid.pipeline import stage_metrics
from omnid.pipeline.worker_health import directory_size_bytes
from omnid.pipeline.worker_metrics import WorkerMetrics
from omnid.rules_file import load_rules

RULES = load_rules()


@pytest.fixture
def worker() -> WorkerMetrics:
    return WorkerMetrics.on(CollectorRegistry(), RULES.identifier_types)


def sample(worker: WorkerMetrics, name: str, **labels: str) -> float | None:
    return worker.registry.get_sample_value(name, labels)


def exposition(worker: WorkerMetrics) -> str:
    body, _ = metrics.render(worker.registry)
    return body.decode()


def test_every_closed_label_value_is_exposed_at_zero_before_any_event(
    worker: WorkerMetrics,
) -> None:
    for channel in Channel:
        assert sample(worker, "omnid_events_ingested_total", channel=channel.value) == 0
    for reason in RejectionReason:
        assert sample(worker, "omnid_dead_letters_total", reason=reason.value) == 0
    for rejection in ("blocked", "unparseable", "suppressed"):
        assert sample(worker, "omnid_identifiers_rejected_total", reason=rejection) == 0
    for identifier_type in RULES.identifier_types:
        for kind in ("limit", "weak_link"):
            reason = f"{kind}:{identifier_type}"
            assert sample(worker, "omnid_merges_refused_total", reason=reason) == 0


def test_weak_link_refusals_keep_their_reason_label(worker: WorkerMetrics) -> None:
    worker.stages.record_merge_refused("weak_link:device_id")
    assert sample(worker, "omnid_merges_refused_total", reason="weak_link:device_id") == 1
    assert not sample(worker, "omnid_merges_refused_total", reason="other")


def test_event_counted_under_its_channel(worker: WorkerMetrics) -> None:
    worker.stages.record_event_ingested("pos")
    worker.stages.record_event_ingested("pos")
    worker.stages.record_event_ingested(Channel.WEB)
    assert sample(worker, "omnid_events_ingested_total", channel="pos") == 2
    assert sample(worker, "omnid_events_ingested_total", channel="web") == 1


def test_unknown_label_values_become_other_and_never_reach_the_exposition(
    worker: WorkerMetrics,
) -> None:
    personal = "ann@example.com"
    worker.stages.record_event_ingested(personal)
    worker.stages.record_dead_letter(personal)
    worker.stages.record_identifier_rejected(personal)
    worker.stages.record_merge_refused(personal)
    worker.runtime.set_consumer_lag(personal, 0, 1)
    text = exposition(worker)
    assert personal not in text
    assert sample(worker, "omnid_events_ingested_total", channel="other") == 1
    assert sample(worker, "omnid_dead_letters_total", reason="other") == 1
    assert sample(worker, "omnid_identifiers_rejected_total", reason="other") == 1
    assert sample(worker, "omnid_merges_refused_total", reason="other") == 1
    assert sample(worker, "omnid_consumer_lag_messages", topic="other", partition="0") == 1


def test_dead_letter_counted_by_rejection_reason(worker: WorkerMetrics) -> None:
    worker.stages.record_dead_letter(RejectionReason.UNDECODABLE)
    assert sample(worker, "omnid_dead_letters_total", reason="undecodable") == 1
    assert sample(worker, "omnid_dead_letters_total", reason="no_identifier") == 0


def test_identity_changes_count_merges_and_refusals_only(worker: WorkerMetrics) -> None:
    worker.stages.record_identity_change("merged", None)
    worker.stages.record_identity_change("merge_refused", "limit:email")
    worker.stages.record_identity_change("identifier_added", None)
    assert sample(worker, "omnid_merges_total") == 1
    assert sample(worker, "omnid_merges_refused_total", reason="limit:email") == 1
    assert sample(worker, "omnid_merges_refused_total", reason="other") is None


def test_a_quarantine_is_counted_by_identifier_type_only(worker: WorkerMetrics) -> None:
    worker.stages.record_identity_change("quarantined", "quarantined:phone")
    worker.stages.record_identity_change("quarantined", "quarantined:ann@example.com")
    assert sample(worker, "omnid_identifiers_quarantined_total", type="phone") == 1
    assert sample(worker, "omnid_identifiers_quarantined_total", type="other") == 1


def test_profile_update_observes_size_and_latency_since_receipt(worker: WorkerMetrics) -> None:
    worker.stages.record_profile_update(3, received_at_ms=[1_000_000], now_s=1_000.25)
    assert sample(worker, "omnid_profile_updates_total") == 1
    assert sample(worker, "omnid_profile_identifiers_sum") == 3
    assert sample(worker, "omnid_end_to_end_latency_seconds_sum") == pytest.approx(0.25)
    assert sample(worker, "omnid_end_to_end_latency_seconds_bucket", le="0.25") == 1
    assert sample(worker, "omnid_end_to_end_latency_seconds_bucket", le="0.1") == 0


def test_tombstone_counts_as_update_without_an_identifier_observation(
    worker: WorkerMetrics,
) -> None:
    worker.stages.record_profile_update(None)
    assert sample(worker, "omnid_profile_updates_total") == 1
    assert sample(worker, "omnid_profile_identifiers_count") == 0
    assert sample(worker, "omnid_end_to_end_latency_seconds_count") == 0


def test_clock_skew_never_yields_negative_latency(worker: WorkerMetrics) -> None:
    worker.stages.record_profile_update(1, received_at_ms=[2_000_000], now_s=1_999.0)
    assert sample(worker, "omnid_end_to_end_latency_seconds_sum") == 0


def test_a_batch_tally_publishes_its_counts_once_and_starts_again(worker: WorkerMetrics) -> None:
    tally = stage_metrics.BatchTally()
    for _ in range(3):
        tally.count(tally.ingested, "pos")
        tally.stage(Stage.IDENTITY, 0.002)
    tally.count(tally.identity_changes, ("merged", None))
    tally.count(tally.identity_changes, ("merge_refused", "limit:email"))
    tally.updates.append((2, [1_000_000, 1_000_100]))
    tally.tombstones += 1
    tally.publish(worker.stages, now_s=1_000.5)
    assert sample(worker, "omnid_events_ingested_total", channel="pos") == 3
    assert sample(worker, "omnid_merges_total") == 1
    assert sample(worker, "omnid_merges_refused_total", reason="limit:email") == 1
    assert sample(worker, "omnid_profile_updates_total") == 2
    # one latency per event the update shows; the stage's mean once per batch
    assert sample(worker, "omnid_end_to_end_latency_seconds_count") == 2
    assert sample(worker, "omnid_stage_processing_seconds_count", stage="identity") == 1
    assert sample(worker, "omnid_stage_processing_seconds_sum", stage="identity") == (
        pytest.approx(0.002)
    )
    assert sample(worker, "omnid_stage_processing_seconds_count", stage="profile") == 0
    tally.publish(worker.stages)
    assert sample(worker, "omnid_events_ingested_total", channel="pos") == 3


def test_revoked_partition_stops_reporting_lag(worker: WorkerMetrics) -> None:
    worker.runtime.set_consumer_lag("omnid.identity-commands", 4, 17)
    labels = {"topic": "omnid.identity-commands", "partition": "4"}
    assert sample(worker, "omnid_consumer_lag_messages", **labels) == 17
    worker.runtime.forget_consumer_lag("omnid.identity-commands", 4)
    worker.runtime.forget_consumer_lag("omnid.identity-commands", 4)  # twice is harmless
    assert sample(worker, "omnid_consumer_lag_messages", **labels) is None


def test_lag_labels_name_the_canonical_topic_without_a_test_prefix(worker: WorkerMetrics) -> None:
    worker.runtime.set_consumer_lag("t-1f3a.omnid.events.web", 2, 5)
    worker.runtime.set_consumer_lag("omnid-app-identifiers-changelog", 2, 5)
    assert (
        sample(worker, "omnid_consumer_lag_messages", topic="omnid.events.web", partition="2") == 5
    )
    assert sample(worker, "omnid_consumer_lag_messages", topic="other", partition="2") == 5


def test_lag_is_never_negative(worker: WorkerMetrics) -> None:
    worker.runtime.set_consumer_lag("omnid.profile-commands", 0, -3)
    labels = {"topic": "omnid.profile-commands", "partition": "0"}
    assert sample(worker, "omnid_consumer_lag_messages", **labels) == 0


def test_directory_size_sums_files_below_the_table_directory(tmp_path: Path) -> None:
    (tmp_path / "000001.sst").write_bytes(b"x" * 1000)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "LOG").write_bytes(b"y" * 24)
    assert directory_size_bytes(tmp_path) == 1024
    assert directory_size_bytes(tmp_path / "absent") == 0


def test_rocksdb_size_rebalances_and_recovery_are_recorded(worker: WorkerMetrics) -> None:
    worker.state.set_rocksdb_size(Table.PROFILES, 4096)
    worker.runtime.rebalances.inc()
    worker.state.table_recovery.observe(2.5)
    assert sample(worker, "omnid_rocksdb_size_bytes", table="profiles") == 4096
    assert sample(worker, "omnid_rebalances_total") == 1
    assert sample(worker, "omnid_table_recovery_seconds_sum") == 2.5


def test_collector_requests_labelled_by_route_and_status() -> None:
    collector = collector_metrics.CollectorMetrics(CollectorRegistry())
    collector.record_request("/v1/track", 200, 0.01)
    collector.record_request("/wp-admin/ann@example.com", 404, 0.01)
    collector.record_events_accepted("web", 3)
    get = collector.registry.get_sample_value
    assert get("omnid_collector_requests_total", {"endpoint": "/v1/track", "status": "200"}) == 1
    assert get("omnid_collector_requests_total", {"endpoint": "other", "status": "404"}) == 1
    assert get("omnid_collector_events_accepted_total", {"channel": "web"}) == 3
    assert get("omnid_collector_request_duration_seconds_count", {"endpoint": "/v1/track"}) == 1


def test_refusal_reasons_of_identifier_types_from_the_rules_become_labels() -> None:
    worker = WorkerMetrics.on(CollectorRegistry(), RULES.identifier_types)
    worker.stages.record_merge_refused("limit:membership_no")
    assert sample(worker, "omnid_merges_refused_total", reason="other") == 1
    worker.stages.allow_identifier_types(["membership_no"])
    assert sample(worker, "omnid_merges_refused_total", reason="weak_link:membership_no") == 0
    worker.stages.record_merge_refused("limit:membership_no")
    assert sample(worker, "omnid_merges_refused_total", reason="limit:membership_no") == 1
