"""Resolution quality arithmetic on small partitions whose answer is known by hand."""

from __future__ import annotations

import pytest

from omnid.benchmarks.quality import (
    assignment_of_groups,
    assignment_of_profiles,
    group_sizes,
    mixed_profiles,
    pairwise_quality,
)

# Two customers: ann has three identifiers (3 true pairs), bob has two (1 true pair).
TRUTH = {
    "email:ann": "ann",
    "phone:ann": "ann",
    "anon:ann": "ann",
    "email:bob": "bob",
    "phone:bob": "bob",
}


def test_identical_partition_scores_perfectly_whatever_the_labels() -> None:
    predicted = {
        "email:ann": "P1",
        "phone:ann": "P1",
        "anon:ann": "P1",
        "email:bob": "P2",
        "phone:bob": "P2",
    }
    quality = pairwise_quality(TRUTH, predicted)
    assert (quality.precision, quality.recall) == (1.0, 1.0)
    assert (quality.true_pairs, quality.correct_pairs) == (4, 4)
    assert (quality.over_merges, quality.under_merges, quality.missing) == (0, 0, 0)


def test_merging_two_customers_costs_precision_and_counts_one_over_merge() -> None:
    everything_in_one = {key: "P1" for key in TRUTH}
    quality = pairwise_quality(TRUTH, everything_in_one)
    assert quality.predicted_pairs == 10  # C(5, 2)
    assert quality.correct_pairs == 4
    assert quality.precision == pytest.approx(0.4)
    assert quality.recall == 1.0
    assert (quality.over_merges, quality.under_merges) == (1, 0)


def test_splitting_a_customer_costs_recall_and_counts_one_under_merge() -> None:
    predicted = {
        "email:ann": "P1",
        "phone:ann": "P1",
        "anon:ann": "P3",
        "email:bob": "P2",
        "phone:bob": "P2",
    }
    quality = pairwise_quality(TRUTH, predicted)
    assert quality.precision == 1.0
    assert quality.recall == pytest.approx(2 / 4)  # ann keeps 1 of 3 pairs, bob keeps his 1
    assert (quality.over_merges, quality.under_merges) == (0, 1)


def test_an_identifier_in_no_profile_is_missing_and_costs_recall() -> None:
    predicted = {"email:ann": "P1", "phone:ann": "P1", "email:bob": "P2", "phone:bob": "P2"}
    quality = pairwise_quality(TRUTH, predicted)
    assert quality.missing == 1
    assert quality.recall == pytest.approx(2 / 4)
    assert quality.under_merges == 1


def test_identifiers_the_truth_does_not_know_are_counted_not_scored() -> None:
    predicted = {key: key.split(":")[1] for key in TRUTH} | {"email:test@test.com": "ann"}
    quality = pairwise_quality(TRUTH, predicted)
    assert quality.unexpected == 1
    assert (quality.precision, quality.recall) == (1.0, 1.0)


def test_one_mixed_profile_and_one_split_customer_together() -> None:
    # P1 = ann's email + bob's email (over-merge); ann's phone and anon alone in P2 (split).
    predicted = {
        "email:ann": "P1",
        "email:bob": "P1",
        "phone:ann": "P2",
        "anon:ann": "P2",
        "phone:bob": "P3",
    }
    quality = pairwise_quality(TRUTH, predicted)
    assert quality.predicted_pairs == 2
    assert quality.correct_pairs == 1
    assert quality.precision == pytest.approx(0.5)
    assert quality.recall == pytest.approx(1 / 4)
    assert quality.over_merges == 1
    assert quality.under_merges == 2  # ann over P1 and P2, bob over P1 and P3


def test_no_pairs_anywhere_is_perfect_by_convention() -> None:
    quality = pairwise_quality({"email:a": "a"}, {"email:a": "x"})
    assert (quality.precision, quality.recall) == (1.0, 1.0)


def test_groups_become_an_assignment_labelled_by_least_key() -> None:
    assert assignment_of_groups([{"b", "a"}, ["c"]]) == {"a": "a", "b": "a", "c": "c"}
    assert group_sizes({"a": "a", "b": "a", "c": "c"}) == {1: 1, 2: 1}


def test_profile_updates_become_an_assignment_of_active_profiles_only() -> None:
    updates = [
        {
            "profile_id": "P1",
            "status": "active",
            "identifiers": [{"type": "email", "value": "a@x.example"}],
        },
        {"profile_id": "P2", "status": "merged", "identifiers": [{"type": "phone", "value": "+1"}]},
    ]
    assert assignment_of_profiles(updates) == {"email:a@x.example": "P1"}


def test_an_identifier_listed_by_two_active_profiles_is_refused() -> None:
    ident = [{"type": "email", "value": "a@x.example"}]
    updates = [
        {"profile_id": "P1", "status": "active", "identifiers": ident},
        {"profile_id": "P2", "status": "active", "identifiers": ident},
    ]
    with pytest.raises(ValueError, match="two active profiles"):
        assignment_of_profiles(updates)


def test_mixed_profiles_names_each_profile_holding_several_customers() -> None:
    predicted = {"email:ann": "P1", "email:bob": "P1", "phone:ann": "P2", "phone:bob": "P3"}
    assert mixed_profiles(TRUTH, predicted) == {"P1": 2}
