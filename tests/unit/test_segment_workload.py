"""The chaos run's oracle is only as good as its workload: the Segment messages must give the
same final profiles in any delivery order (so one simulator run is exact for a run whose
faults reorder and redeliver events), and each customer's fed totals must be what the
simulator's profile of that customer counts."""

from __future__ import annotations

import itertools
import random

from omnid.adapters.write_keys import load_write_keys
from omnid.benchmarks.segment_workload import channel_events, expected_totals, segment_messages
from omnid.config import Settings
from omnid.testing.availability import availability_over
from omnid.testing.oracle import signatures, simulated_profiles

MESSAGES = list(itertools.islice(segment_messages(customers=25, seed=5), 300))


def _events() -> list[dict[str, object]]:
    return channel_events(MESSAGES, load_write_keys(Settings().write_keys_file))


def test_final_profiles_do_not_depend_on_delivery_order_or_partitions() -> None:
    events = _events()
    first = signatures(simulated_profiles(events, 6, seed=3))
    for seed in range(4):
        shuffled = list(events)
        random.Random(seed).shuffle(shuffled)
        assert signatures(simulated_profiles(shuffled, 3 + seed, seed=seed)) == first


def test_each_customer_ends_in_one_profile_counting_what_was_fed() -> None:
    profiles = simulated_profiles(_events(), 6, seed=3)
    want = expected_totals(MESSAGES)
    assert len(profiles) == len(want) == 25
    for profile in profiles:
        (user_id,) = [i["value"] for i in profile["identifiers"] if i["type"] == "user_id"]
        computed = profile["computed"]
        assert computed["event_count"] == want[user_id].events
        assert computed["order_count"] == want[user_id].orders
        assert round(computed["revenue"].get("EUR", 0) * 100) == want[user_id].revenue_cents


def test_availability_counts_only_the_polls_inside_each_window() -> None:
    answers = {"k": [(0.0, 200, False), (1.0, 503, False), (2.0, 0, False), (3.0, 200, True)]}
    whole = availability_over(answers, [("k", 0.0, 10.0)])
    assert whole == {"polls": 4, "answered_200": 0.5, "stale_200": 0.25, "longest_gap_s": 2.0}
    assert availability_over(answers, [("k", 2.5, 10.0)])["longest_gap_s"] == 0.0
    # A window opening on failures: the gap runs from its first poll.
    assert availability_over(answers, [("k", 0.5, 10.0)])["longest_gap_s"] == 1.0
    assert availability_over(answers, [])["polls"] == 0
