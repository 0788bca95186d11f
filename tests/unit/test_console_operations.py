"""The console's Operate numbers: a worker's metrics summarised, and per-minute rates."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from omnid.console.operations import CounterHistory, registry_samples, summarise
from omnid.pipeline.worker_metrics import WorkerMetrics


def test_a_worker_registry_is_summarised_by_reason_partition_and_total() -> None:
    worker = WorkerMetrics.on(CollectorRegistry(), ["email"])
    worker.stages.record_dead_letter("undecodable")
    worker.stages.record_dead_letter("undecodable")
    worker.stages.record_dead_letter("no_identifier")
    worker.stages.merges.inc()
    worker.stages.record_merge_refused("limit:email")
    worker.runtime.set_consumer_lag("omnid.events.web", 1, 7)
    worker.runtime.set_consumer_lag("omnid.events.app", 0, 3)

    summary = summarise(registry_samples(worker.registry))

    assert summary["dead_letters_by_reason"]["undecodable"] == 2
    assert summary["dead_letters_by_reason"]["no_identifier"] == 1
    assert summary["dead_letters_by_reason"]["oversized"] == 0  # every reason, even at zero
    assert summary["merges_refused_by_reason"]["limit:email"] == 1
    assert summary["consumer_lag"] == [
        {"topic": "omnid.events.app", "partition": 0, "lag": 3},
        {"topic": "omnid.events.web", "partition": 1, "lag": 7},
    ]
    assert summary["consumer_lag_total"] == 10
    assert summary["totals"] == {"events": 0, "merges": 1, "refusals": 1, "dead_letters": 3}


def test_rates_are_per_minute_over_the_last_minute_and_unknown_before_two_samples() -> None:
    history = CounterHistory(window_s=60)
    history.add(0.0, {"merges": 0, "events": 0})
    assert history.per_minute()["merges"] is None
    history.add(30.0, {"merges": 10, "events": 100})
    assert history.per_minute()["merges"] == 20.0  # 10 in half a minute
    for second in range(35, 200, 5):
        history.add(float(second), {"merges": 10 + second, "events": 100})
    # Only the last minute counts: one merge a second then, no new events.
    assert history.per_minute() == {
        "events": 0.0,
        "merges": 60.0,
        "refusals": 0.0,
        "dead_letters": 0.0,
    }


def test_a_counter_that_went_down_counts_from_zero_like_a_restarted_process() -> None:
    history = CounterHistory(window_s=60)
    history.add(0.0, {"merges": 500})
    history.add(60.0, {"merges": 4})
    assert history.per_minute()["merges"] == 4.0
