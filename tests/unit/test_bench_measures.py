"""Latency percentiles and rates used by every benchmark report."""

from __future__ import annotations

import pytest

from omnid.benchmarks.measures import percentile, rate, ratio, summarise_latencies


def test_nearest_rank_percentiles_are_observed_values() -> None:
    samples = list(range(1, 101))  # 1..100 ms
    assert percentile(samples, 50) == 50
    assert percentile(samples, 95) == 95
    assert percentile(samples, 99) == 99
    assert percentile(samples, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_a_single_slow_sample_in_a_hundred_sets_the_p99_only_beyond_rank() -> None:
    samples = sorted([10.0] * 99 + [500.0])
    summary = summarise_latencies(samples)
    assert summary is not None
    assert (summary.p50_ms, summary.p99_ms, summary.max_ms) == (10.0, 10.0, 500.0)
    assert summary.mean_ms == pytest.approx(14.9)


def test_summary_sorts_its_input_and_reports_nothing_for_no_samples() -> None:
    summary = summarise_latencies([3.0, 1.0, 2.0])
    assert summary is not None and (summary.p50_ms, summary.count) == (2.0, 3)
    assert summarise_latencies([]) is None


def test_percentile_refuses_empty_input_and_points_outside_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_rates_and_ratios_do_not_divide_by_zero() -> None:
    assert rate(1_000, 2.0) == 500.0
    assert rate(1, 0.0) is None
    assert ratio(300.0, 1_000.0) == pytest.approx(0.3)
    assert ratio(None, 1_000.0) is None
    assert ratio(1.0, 0.0) is None
