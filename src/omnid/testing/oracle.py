"""What a pipeline run is compared with: the same events through the in-memory simulator
(the oracle), and the profile signatures and totals that no worker count, partitioning or
delivery order may change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from omnid.config import Settings
from omnid.identity.model import event_from_record
from omnid.identity.simulator import Simulator
from omnid.rules_file import load_rules


def simulated_profiles(
    records: Iterable[Mapping[str, Any]], partitions: int, seed: int
) -> list[dict[str, Any]]:
    """The oracle a pipeline run is compared with: the same events through the in-memory
    simulator over as many partitions; the last ProfileUpdate of each active profile."""
    rules = load_rules(Settings().rules_file)
    result = Simulator(rules, partitions=partitions, seed=seed).run(
        [event_from_record(record) for record in records]
    )
    active = result.active_profiles()
    return [record for pid, record in result.updates.items() if pid in active]


def profile_signature(record: Mapping[str, Any]) -> tuple[frozenset[str], dict[str, Any]]:
    """What must not depend on workers, partitions or delivery order: the identifiers of a
    profile and everything computed from its events. Ids and versions may differ by order."""
    computed = record["computed"]
    identifiers = frozenset(f"{i['type']}:{i['value']}" for i in record["identifiers"])
    return identifiers, {
        "event_count": computed["event_count"],
        "order_count": computed["order_count"],
        "revenue": {c: round(v, 6) for c, v in sorted(computed["revenue"].items())},
        "channel_counts": dict(sorted(computed["channel_counts"].items())),
        "traits": {k: v["value"] for k, v in sorted(record["traits"].items())},
        "consent": {k: v["granted"] for k, v in sorted(computed["consent"].items())},
    }


def signatures(records: Iterable[Mapping[str, Any]]) -> dict[frozenset[str], dict[str, Any]]:
    return dict(profile_signature(record) for record in records)


def totals(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sums over profiles that no delivery order may change: every valid event and every order
    counted by exactly one active profile (ARCHITECTURE.md invariant 4)."""
    events = orders = 0
    revenue: dict[str, float] = {}
    for record in records:
        computed = record["computed"]
        events += computed["event_count"]
        orders += computed["order_count"]
        for currency, amount in computed["revenue"].items():
            revenue[currency] = revenue.get(currency, 0.0) + amount
    return {
        "events": events,
        "orders": orders,
        "revenue": {c: round(v, 4) for c, v in sorted(revenue.items())},
    }
