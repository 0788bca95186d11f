"""The benchmark workload: reproducible, shaped like ChannelEvent, and its ground truth is right."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict

import pytest
from fastavro import parse_schema
from fastavro.validation import validate

from omnid.benchmarks.workload import (
    TILL_EMAIL,
    GenericKind,
    IdentifierRole,
    WorkloadSpec,
    channel_events,
    deterministic_links,
    families,
    family_card,
    ground_truth,
    labelled_events,
    store_phone,
)
from omnid.config import PROJECT_ROOT
from omnid.identity.normalisers import RejectedIdentifier
from omnid.identity.rules import normalise
from omnid.rules_file import load_rules

SPEC = WorkloadSpec(customers=200, events=4_000, seed=11)


@pytest.fixture(scope="module")
def events() -> list:
    return list(labelled_events(SPEC))


def test_same_seed_yields_the_same_stream() -> None:
    first = list(itertools.islice(channel_events(SPEC), 1_500))
    second = list(itertools.islice(channel_events(SPEC), 1_500))
    assert first == second


def test_different_seeds_yield_different_streams() -> None:
    other = WorkloadSpec(customers=200, events=200, seed=12)
    assert list(channel_events(other)) != list(channel_events(WorkloadSpec(200, 200, seed=11)))


def test_stream_has_exactly_the_requested_number_of_events(events: list) -> None:
    assert len(events) == SPEC.events


def test_every_event_is_a_valid_channel_event_record(events: list) -> None:
    schema_path = PROJECT_ROOT / "schemas" / "channel_event.avsc"
    schema = parse_schema(json.loads(schema_path.read_text()))
    for event in events:
        assert validate(event.record, schema, raise_errors=True)
        assert isinstance(event.record["occurred_at"], int)
        assert isinstance(event.record["received_at"], int)


def test_no_identifier_key_belongs_to_two_customers(events: list) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for event in events:
        for key, owner in zip(event.keys, event.owners, strict=True):
            if owner is not None:
                owners[key].add(owner)
    assert owners
    assert all(len(who) == 1 for who in owners.values())


def test_ground_truth_agrees_with_the_event_labels(events: list) -> None:
    truth = ground_truth(SPEC)
    for event in events:
        for key, role in zip(event.keys, event.roles, strict=True):
            if role is IdentifierRole.CUSTOMER:
                assert truth.owner_by_key[key] == event.customer_id
            elif role is IdentifierRole.SHARED:
                assert key in truth.shared_keys and key not in truth.owner_by_key
            elif role is IdentifierRole.GENERIC:
                assert key in truth.generic_kinds and key not in truth.owner_by_key
            else:
                assert key in truth.junk_keys and key not in truth.owner_by_key


def test_deterministic_links_only_join_identifiers_of_one_customer(events: list) -> None:
    truth = ground_truth(SPEC)
    links = list(deterministic_links(events))
    assert len(links) > SPEC.customers
    for left, right in links:
        assert truth.owner_by_key[left] == truth.owner_by_key[right]


def test_workload_contains_every_kind_of_noise(events: list) -> None:
    truth = ground_truth(SPEC)
    records = [e.record for e in events]
    assert any(e.is_duplicate for e in events)
    assert len({r["event_id"] for r in records}) < len(records)
    assert any(not r["identifiers"] for r in records), "cash purchases without identifiers"
    assert truth.junk_keys
    tablet_customers: dict[str, set[str]] = defaultdict(set)
    for event in events:
        for key, role in zip(event.keys, event.roles, strict=True):
            if role is IdentifierRole.SHARED and event.customer_id:
                tablet_customers[key].add(event.customer_id)
    assert max(len(c) for c in tablet_customers.values()) > 1, "a tablet used by many customers"
    late = [r for r in records if r["received_at"] - r["occurred_at"] > 3_600_000]
    assert late
    occurred = [r["occurred_at"] for r in records]
    assert occurred != sorted(occurred), "out-of-order delivery"


def test_anonymous_sessions_are_later_linked_to_a_login(events: list) -> None:
    first_anonymous_page: dict[str, int] = {}
    logged_in_after_browsing = 0
    for position, event in enumerate(events):
        types = [i["type"] for i in event.record["identifiers"]]
        if event.record["event_type"] == "page" and types == ["anonymous_id"]:
            first_anonymous_page.setdefault(event.keys[0], position)
        elif event.record["event_type"] == "identify" and "user_id" in types:
            browsed = [k for k in event.keys if first_anonymous_page.get(k, position) < position]
            logged_in_after_browsing += bool(browsed)
    assert logged_in_after_browsing > 50


def test_default_rules_keep_customer_identifiers_and_refuse_junk(events: list) -> None:
    """The workload's ground truth keys are what the identity core normalises the raw values to."""
    rules = load_rules()
    for event in events:
        for identifier, key, role in zip(
            event.record["identifiers"], event.keys, event.roles, strict=True
        ):
            if role is IdentifierRole.JUNK:
                with pytest.raises(RejectedIdentifier):
                    normalise(rules, identifier["type"], identifier["value"])
            else:
                assert normalise(rules, identifier["type"], identifier["value"]).key == key


def test_generic_values_are_typed_in_for_many_customers_and_join_none_of_them(
    events: list,
) -> None:
    truth = ground_truth(SPEC)
    kinds = truth.generic_kinds
    assert set(kinds.values()) == set(GenericKind)
    assert kinds[f"email:{TILL_EMAIL}"] is GenericKind.TILL_EMAIL
    store_phones = {f"phone:{store_phone(s)}" for s in range(SPEC.stores)}
    assert {k for k, kind in kinds.items() if kind is GenericKind.STORE_PHONE} <= store_phones
    assert max(len(truth.generic_claimants[k]) for k in store_phones & kinds.keys()) >= 4
    households = {
        f"loyalty_id:{family_card(SPEC, f)}": {f"cust-{i:07d}" for i in members}
        for f, members in enumerate(families(SPEC))
    }
    cards = {k for k, kind in kinds.items() if kind is GenericKind.FAMILY_CARD}
    assert cards and any(len(truth.generic_claimants[k]) > 1 for k in cards)
    assert all(truth.generic_claimants[card] <= households[card] for card in cards)
    # Ground truth: a generic value is nobody's identifier, so no expected link goes through it.
    linked = {key for pair in deterministic_links(events) for key in pair}
    assert not linked & kinds.keys()
    # Generic values sit in events next to a customer's own identifiers: the glue.
    beside_a_customer = {
        key
        for event in events
        if event.customer_keys
        for key, role in zip(event.keys, event.roles, strict=True)
        if role is IdentifierRole.GENERIC
    }
    assert {kinds[key] for key in beside_a_customer} == set(GenericKind)


def test_households_are_disjoint_and_fit_the_customers() -> None:
    small = WorkloadSpec(customers=5, events=10, family_cards=4)
    members = [i for household in families(small) for i in household]
    assert len(members) == len(set(members)) <= 5
    assert all(2 <= len(household) <= 5 for household in families(small))


def test_without_shared_values_has_no_tablet_and_no_generic_value() -> None:
    plain = list(labelled_events(SPEC.without_shared_values()))
    roles = {role for event in plain for role in event.roles}
    assert IdentifierRole.SHARED not in roles and IdentifierRole.GENERIC not in roles
