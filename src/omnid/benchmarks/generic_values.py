"""What quarantine buys on the workload's generic values (store phones, the till placeholder
email, household loyalty cards): resolution quality with and without it, and how many events it
takes to catch each value.

Both runs are the identity core in the in-memory simulator, with the same rules except
`quarantine_after` (`IdentityRules.without_quarantine()` for the run without). Both deliver the
stream one event at a time, each processed to the end before the next, so "the value was
quarantined after event i" is exact: the detection delay in events is then a
property of the rules (how many claims a value needs), not of scheduling. In the pipeline,
batches and partitions add their own lag on top.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from omnid.benchmarks.quality import invert, mixed_profiles, pairwise_quality
from omnid.benchmarks.workload import GenericKind, GroundTruth, IdentifierRole, LabelledEvent
from omnid.errors import InvalidEvent
from omnid.identity.model import Event, event_from_record
from omnid.identity.rules import IdentityRules
from omnid.identity.simulator import SimulationResult, Simulator
from omnid.identity.state import IdentifierState, IdentifierStatus

PARTITIONS = 8
SEED = 1


def is_quarantined(state: IdentifierState | None) -> bool:
    return state is not None and state.status is IdentifierStatus.QUARANTINED


def _decoded(labelled: Sequence[LabelledEvent]) -> list[tuple[int, Event]]:
    """(stream position, event) of every decodable event."""
    decoded = []
    for position, item in enumerate(labelled):
        try:
            decoded.append((position, event_from_record(item.record)))
        except InvalidEvent:
            continue
    return decoded


def customer_claims(labelled: Sequence[LabelledEvent]) -> dict[str, list[tuple[int, str]]]:
    """Per generic value, in stream order, (position, customer) of each event in which a
    customer (by the ground truth) typed it in next to an identifier of their own."""
    claims: dict[str, list[tuple[int, str]]] = {}
    for position, item in enumerate(labelled):
        if item.customer_id is None or not item.customer_keys:
            continue
        for key, role in zip(item.keys, item.roles, strict=True):
            if role is IdentifierRole.GENERIC:
                claims.setdefault(key, []).append((position, item.customer_id))
    return claims


def second_claim(claims: list[tuple[int, str]]) -> int | None:
    """The position of the first claim by a second customer, None if only one ever claimed."""
    first = claims[0][1]
    return next((position for position, who in claims if who != first), None)


def run_with_detection(
    rules: IdentityRules, labelled: Sequence[LabelledEvent], generic_keys: set[str]
) -> tuple[SimulationResult, dict[str, int]]:
    """The stream through the core one event at a time; the final graph, and per generic value
    the stream position of the event after which it was quarantined."""
    simulator = Simulator(rules, PARTITIONS, SEED, keep_outputs=False)
    result: SimulationResult | None = None
    quarantined_at: dict[str, int] = {}
    # Every generic value is checked after every event: they are few, and an event's own
    # identifiers are raw (" Kasse@Filiale.example "), not the keys the graph holds.
    watched = set(generic_keys)
    for position, event in _decoded(labelled):
        result = simulator.run([event], after=result)
        caught = {key for key in watched if is_quarantined(result.identifiers.get(key))}
        for key in caught:
            quarantined_at[key] = position
        watched -= caught
    if result is None:
        result = simulator.run([])
    return result, quarantined_at


def _profile_quality(
    result: SimulationResult, expected: dict[str, str], truth: GroundTruth
) -> dict[str, Any]:
    predicted = {
        key: profile_id
        for profile_id, profile in result.active_profiles().items()
        for key in profile.identifiers
    }
    mixed = mixed_profiles(expected, predicted)
    members = invert(predicted)
    generic = truth.generic_kinds.keys()
    return {
        "deterministic_links": pairwise_quality(expected, predicted).as_dict(),
        "customers": pairwise_quality(truth.owner_by_key, predicted).as_dict(),
        "over_merged_profiles": len(mixed),
        "over_merged_profiles_holding_a_generic_value": sum(
            1 for profile in mixed if members[profile] & generic
        ),
    }


def _spread(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"values": 0, "median": None, "max": None, "min": None}
    return {
        "values": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def _delays(
    claims: dict[str, list[tuple[int, str]]], quarantined_at: dict[str, int], keys: list[str]
) -> dict[str, Any]:
    """For the values among `keys` that a second customer typed in: how many were quarantined,
    and for those how long it took, in stream events and in events carrying the value, from the
    second customer's claim to the quarantine, and how many customers had claimed it by then."""
    shared = {k: at for k in keys if k in claims and (at := second_claim(claims[k])) is not None}
    caught = [k for k in shared if k in quarantined_at]
    return {
        "typed_in_for_two_or_more_customers": len(shared),
        "quarantined": len([k for k in keys if k in quarantined_at]),
        "delay_events": _spread([quarantined_at[k] - shared[k] for k in caught]),
        "delay_claims": _spread(
            [sum(1 for at, _ in claims[k] if shared[k] <= at <= quarantined_at[k]) for k in caught]
        ),
        "customers_when_quarantined": _spread(
            [len({who for at, who in claims[k] if at <= quarantined_at[k]}) for k in caught]
        ),
        "not_quarantined_customers_per_value": sorted(
            len({who for _, who in claims[k]}) for k in shared if k not in quarantined_at
        ),
    }


def detection_facts(
    truth: GroundTruth, claims: dict[str, list[tuple[int, str]]], quarantined_at: dict[str, int]
) -> dict[str, Any]:
    """The detection delays over every generic value, and per kind with its number of values
    and the most customers one value was typed in for."""
    by_kind = {}
    for kind in GenericKind:
        keys = [k for k, of in truth.generic_kinds.items() if of is kind]
        by_kind[kind.value] = {
            "values": len(keys),
            "customers_per_value_max": max(
                (len(truth.generic_claimants[k]) for k in keys), default=0
            ),
            **_delays(claims, quarantined_at, keys),
        }
    return {**_delays(claims, quarantined_at, list(truth.generic_kinds)), "by_kind": by_kind}


def generic_value_quality(
    rules: IdentityRules,
    labelled: Sequence[LabelledEvent],
    expected: dict[str, str],
    truth: GroundTruth,
) -> dict[str, Any]:
    """Quality with and without quarantine on the same workload, and the detection delay."""
    generic = set(truth.generic_kinds)
    with_result, quarantined_at = run_with_detection(rules, labelled, generic)
    # Also one event at a time: the arrival order changes what limits refuse, so only the same
    # delivery makes the two runs differ by quarantine alone.
    without_result, _ = run_with_detection(rules.without_quarantine(), labelled, generic)
    customer_keys_quarantined = sum(
        1 for key in truth.owner_by_key if is_quarantined(with_result.identifiers.get(key))
    )
    return {
        "engine": "identity core in the in-memory simulator, one event at a time",
        "quarantine_after": {
            name: rule.quarantine_after
            for name, rule in rules.identifier_types.items()
            if rule.quarantine_after is not None
        },
        "with_quarantine": _profile_quality(with_result, expected, truth),
        "without_quarantine": _profile_quality(without_result, expected, truth),
        "detection": detection_facts(truth, customer_claims(labelled), quarantined_at),
        "customer_identifiers_quarantined": customer_keys_quarantined,
        "note": "delay_events: events in the stream from the one where a second customer typed "
        "the value in (ground truth) to the one after which it was quarantined; delay_claims: "
        "of those, the events that carried the value (both ends included)",
    }
