"""`omnid bench --engine memory`: events/s through the identity core (in-memory simulator),
next to a plain union-find over the same events, in the same run."""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping, Set
from typing import Any

from omnid.benchmarks.quality import invert, mixed_profiles, pairwise_quality
from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.config import Settings
from omnid.errors import InvalidEvent
from omnid.identity.components import UnionFind
from omnid.identity.intake import usable_identifiers
from omnid.identity.model import Event, event_from_record
from omnid.identity.rules import IdentityRules, NormalisationCache
from omnid.identity.simulator import Simulator
from omnid.rules_file import load_rules

PARTITIONS = 8
SEED = 1


def decode(spec: WorkloadSpec) -> tuple[list[Event], int]:
    events, undecodable = [], 0
    for record in channel_events(spec):
        try:
            events.append(event_from_record(record))
        except InvalidEvent:
            undecodable += 1
    return events, undecodable


def union_find_pass(rules: IdentityRules, events: list[Event]) -> tuple[float, float, int]:
    """Seconds for union-find including normalisation, seconds for the bare unions over
    already-normalised keys, and the number of components."""
    started = time.perf_counter()
    cache = NormalisationCache(rules)  # its own: not warmed by the core's pass
    key_sets = []
    for event in events:
        identifiers, _ = usable_identifiers(rules, event.identifiers, cache)
        if identifiers:
            key_sets.append([i.key for i in identifiers])
    normalised_at = time.perf_counter()
    sets = UnionFind()
    for keys in key_sets:
        sets.add_group(keys)
    finished = time.perf_counter()
    roots = {sets.find(k) for k in sets.parent}
    return finished - started, finished - normalised_at, len(roots)


def quality_of(
    profiles: Mapping[str, Set[str]], expected: Mapping[str, str], shared_keys: Set[str]
) -> dict[str, Any]:
    """Resolution quality of final profiles (profile id -> identifier keys) against the
    workload's deterministic links, with the same over-merge diagnostics as the Kafka run."""
    predicted = {key: profile_id for profile_id, keys in profiles.items() for key in keys}
    mixed = mixed_profiles(expected, predicted)
    members = invert(predicted)
    return {
        "deterministic_links": pairwise_quality(expected, predicted).as_dict(),
        "over_merged_profiles": len(mixed),
        "over_merged_profiles_holding_a_shared_device": sum(
            1 for profile in mixed if members[profile] & shared_keys
        ),
        "profiles_holding_a_shared_device": sum(
            1 for keys in members.values() if keys & shared_keys
        ),
    }


def run(
    spec: WorkloadSpec,
    partitions: int = PARTITIONS,
    expected: Mapping[str, str] | None = None,
    shared_keys: Set[str] = frozenset(),
) -> dict[str, Any]:
    """Time the core and union-find; with `expected` (identifier key -> true group), also
    measure the core's resolution quality."""
    rules = load_rules(Settings().rules_file)
    events, undecodable = decode(spec)
    gc.collect()
    gc.disable()  # the core allocates many small objects; collection pauses are not its cost
    try:
        uf_seconds, uf_bare_seconds, components = union_find_pass(rules, events)
        started = time.perf_counter()
        result = Simulator(rules, partitions, SEED, keep_outputs=False).run(events)
        core_seconds = time.perf_counter() - started
    finally:
        gc.enable()
    active = result.active_profiles()
    count = len(events)
    core_rate = count / core_seconds
    out: dict[str, Any] = {
        "engine": "identity core in the in-memory simulator (omnid.identity.simulator)",
        "events": count,
        "undecodable": undecodable,
        "partitions": partitions,
        "seed": SEED,
        "core": {
            "seconds": core_seconds,
            "events_per_s": core_rate,
            "commands_delivered": result.steps,
            "commands_per_event": result.steps / count,
            "valid_events": len(result.valid_event_ids),
            "rejected_events": len(result.rejected),
            "counted_events": sum(p.event_count for p in active.values()),
            "active_profiles": len(active),
            "changes": dict(sorted(result.change_counts.items())),
        },
        "union_find": {
            "seconds": uf_seconds,
            "events_per_s": count / uf_seconds,
            "bare_union_seconds": uf_bare_seconds,
            "bare_union_events_per_s": count / uf_bare_seconds if uf_bare_seconds else None,
            "components": components,
            "note": "normalisation + blocklist + union-find, no limits, no profiles",
        },
        "core_vs_union_find": core_rate / (count / uf_seconds),
    }
    if expected is not None:
        profiles = {pid: set(p.identifiers) for pid, p in active.items()}
        out["quality"] = quality_of(profiles, expected, shared_keys)
    return out
