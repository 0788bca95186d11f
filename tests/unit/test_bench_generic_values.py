"""The detection delay of generic values: from the event where a second customer typed a value
in to the one after which it was quarantined, counted on hand-made streams."""

from __future__ import annotations

from omnid.benchmarks import cli as bench_cli
from omnid.benchmarks.generic_values import (
    customer_claims,
    detection_facts,
    generic_value_quality,
    run_with_detection,
    second_claim,
)
from omnid.benchmarks.workload import (
    GenericKind,
    GroundTruth,
    IdentifierRole,
    LabelledEvent,
    WorkloadSpec,
    ground_truth_of,
    labelled_events,
)
from omnid.contracts import new_channel_event
from omnid.rules_file import load_rules

STORE = "phone:+441134960001"
TILL = "email:kasse@filiale.example"


def walk_in(customer: str, *generic: str, own: bool = True) -> LabelledEvent:
    keys = ((f"loyalty_id:{customer}",) if own else ()) + generic
    roles = ((IdentifierRole.CUSTOMER,) if own else ()) + (IdentifierRole.GENERIC,) * len(generic)
    owners = ((customer,) if own else ()) + (None,) * len(generic)
    return LabelledEvent({}, keys, owners, roles, customer)


def test_claims_are_customers_typing_the_value_in_next_to_an_identifier_of_their_own() -> None:
    stream = [
        walk_in("ann", STORE),
        walk_in("ann", STORE),  # the same customer again
        walk_in("bob", STORE, own=False),  # gave nothing: no customer is known to it
        walk_in("bob", STORE, TILL),  # position 3: bob is the second for the phone
        walk_in("cat", TILL),  # position 4: cat is the second for the email
    ]
    claims = customer_claims(stream)
    assert claims == {STORE: [(0, "ann"), (1, "ann"), (3, "bob")], TILL: [(3, "bob"), (4, "cat")]}
    assert (second_claim(claims[STORE]), second_claim(claims[TILL])) == (3, 4)
    assert second_claim([(0, "ann"), (5, "ann")]) is None


def test_delay_counts_events_and_claims_from_the_second_customer_to_the_quarantine() -> None:
    truth = GroundTruth(
        generic_kinds={STORE: GenericKind.STORE_PHONE, TILL: GenericKind.TILL_EMAIL},
        generic_claimants={STORE: {"ann", "bob", "cat", "dan"}, TILL: {"ann", "bob"}},
    )
    claims = {
        STORE: [(0, "ann"), (3, "bob"), (6, "bob"), (8, "cat"), (10, "dan"), (12, "eve")],
        TILL: [(1, "ann"), (4, "bob")],
    }
    facts = detection_facts(truth, claims, quarantined_at={STORE: 10})
    phones = facts["by_kind"]["store_phone"]
    assert phones["quarantined"] == 1 and phones["customers_per_value_max"] == 4
    assert phones["delay_events"]["median"] == 7  # from position 3 to position 10
    assert phones["delay_claims"]["median"] == 4  # positions 3, 6, 8 and 10 carried it
    assert phones["customers_when_quarantined"]["median"] == 4  # ann, bob, cat, dan
    emails = facts["by_kind"]["till_email"]
    assert emails["typed_in_for_two_or_more_customers"] == 1 and emails["quarantined"] == 0
    assert emails["not_quarantined_customers_per_value"] == [2]
    assert facts["by_kind"]["family_card"]["delay_events"]["values"] == 0
    assert facts["delay_events"] == {"values": 1, "median": 7, "min": 7, "max": 7}
    assert (facts["quarantined"], facts["typed_in_for_two_or_more_customers"]) == (1, 2)


def test_without_generic_values_quarantine_changes_nothing_and_catches_no_customer() -> None:
    labelled = list(labelled_events(WorkloadSpec(customers=80, events=800).without_shared_values()))
    truth = ground_truth_of(labelled)
    quality = generic_value_quality(
        load_rules(), labelled, bench_cli._expected_groups(labelled), truth
    )
    assert quality["with_quarantine"] == quality["without_quarantine"]
    assert quality["customer_identifiers_quarantined"] == 0
    assert quality["with_quarantine"]["deterministic_links"]["precision"] == 1.0


def test_a_store_phone_is_caught_at_the_event_that_quarantines_it_and_stays_there() -> None:
    phone = "+441134960003"
    stream = []
    for n in range(6):
        own = f"email:walk.in.{n}@inbox.example"
        record = new_channel_event(
            event_id=f"till-{n}",
            channel="pos",
            source="store-003-till-1",
            event_type="purchase",
            # The cashier types the number as it is printed on the till: not the graph's key.
            identifiers=[("email", own.removeprefix("email:")), ("phone", "0113 496 0003")],
            occurred_at=1_790_000_000_000 + n * 1_000,
            received_at=1_790_000_000_000 + n * 1_000,
        )
        roles = (IdentifierRole.CUSTOMER, IdentifierRole.GENERIC)
        stream.append(
            LabelledEvent(record, (own, f"phone:{phone}"), (f"c{n}", None), roles, f"c{n}")
        )
    result, quarantined_at = run_with_detection(load_rules(), stream, {f"phone:{phone}"})
    # quarantine_after 4 for phones: the fourth customer's claim crosses it; the later claims
    # of the quarantined value leave the position where it was caught.
    assert quarantined_at == {f"phone:{phone}": 3}
    assert len({p.profile_id for p in result.active_profiles().values()}) == 6
