"""`omnid bench`: one run measures the pipeline, its ceilings and its answers on one workload."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnid.benchmarks.batch_components import (
    same_partition,
    scipy_components,
    union_find_components,
)
from omnid.benchmarks.generic_values import generic_value_quality
from omnid.benchmarks.measures import ratio
from omnid.benchmarks.quality import (
    assignment_of_groups,
    assignment_of_profiles,
    invert,
    mixed_profiles,
    pairwise_quality,
)
from omnid.benchmarks.report import summary_lines, write_chart, write_json
from omnid.benchmarks.workload import (
    GroundTruth,
    LabelledEvent,
    WorkloadSpec,
    ground_truth_of,
    labelled_events,
    linked_key_sets,
)
from omnid.config import PROJECT_ROOT, Settings
from omnid.errors import ConfigError
from omnid.rules_file import load_rules

ENGINES = ("kafka", "memory", "all")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark: throughput, latency, ceilings and resolution quality on one workload",
        description=__doc__,
    )
    parser.add_argument("--engine", choices=ENGINES, default="kafka")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=None, help="default: what the plan needs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output-dir", type=Path, default=PROJECT_ROOT / "bench" / "results")
    kafka = parser.add_argument_group("kafka engine")
    kafka.add_argument(
        "--loads",
        default="100,500,1000",
        help="paced offered loads in events/s, comma separated (1000 is the latency target)",
    )
    kafka.add_argument("--phase-seconds", type=float, default=5.0)
    kafka.add_argument("--saturation-events", type=int, default=4_000)
    kafka.add_argument("--workers", type=int, default=1)
    kafka.add_argument(
        "--guarantee", choices=("exactly_once", "at_least_once"), default="exactly_once"
    )
    kafka.add_argument("--partitions", type=int, default=6, help="of the baseline topics")
    kafka.add_argument(
        "--baseline-events",
        type=int,
        default=30_000,
        help="the baselines replay the workload's bytes cyclically up to this many events, so a "
        "fast ceiling is not a measurement of start-up noise",
    )
    kafka.add_argument("--skip-baselines", action="store_true")
    kafka.add_argument("--skip-pipeline", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnid.benchmarks.pipeline_run import PipelinePlan

    loads = tuple(int(x) for x in args.loads.split(",") if x.strip())
    plan = PipelinePlan(
        offered_loads=loads,
        phase_seconds=args.phase_seconds,
        saturation_events=args.saturation_events,
        workers=args.workers,
        guarantee=args.guarantee,
    )
    events = args.events if args.events is not None else plan.events_needed()
    spec = WorkloadSpec(customers=args.customers, events=events, seed=args.seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"omnid-bench-{stamp.lower()}-{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {
        "run_id": run_id,
        "started_at": stamp,
        "command": shlex.join(["omnid", "bench", *sys.argv[2:]])
        if sys.argv[1:2] == ["bench"]
        else "",
        "machine": _machine(),
        "workload": {**spec.__dict__},
    }
    labelled = list(labelled_events(spec))
    truth = ground_truth_of(labelled)
    results["workload"].update(_workload_facts(labelled, truth))
    expected = _expected_groups(labelled)
    results["batch"] = _batch(labelled)
    headline: dict[str, Any] = {}
    phases: list[dict[str, Any]] = []
    ceilings: dict[str, float | None] = {}

    if args.engine in ("memory", "all"):
        results["memory"] = _memory_engine(
            spec, args.engine == "memory", expected, truth.shared_keys
        )
        results["generic_values"] = generic_value_quality(
            load_rules(Settings().rules_file), labelled, expected, truth
        )

    if args.engine in ("kafka", "all"):
        kafka = _kafka(args, plan, labelled, run_id, expected, truth)
        results.update(kafka)
        phases = results.get("pipeline", {}).get("phases", [])
        baselines = results.get("baselines", {})
        ceilings = {
            "confluent-kafka pass-through": baselines.get("passthrough", {}).get("events_per_s"),
            "Faust forward-only agent": baselines.get("faust_forward", {}).get("events_per_s"),
            "quix-streams stateful count, exactly-once": baselines.get(
                "quix_count_exactly_once", {}
            ).get("events_per_s"),
        }
        headline = _headline(results)
    core = results.get("memory", {}).get("core")
    if core:
        headline["identity core in memory, events/s (no Kafka)"] = core["events_per_s"]
        memory_links = results["memory"].get("quality", {}).get("deterministic_links", {})
        for name in ("precision", "recall", "over_merges", "under_merges"):
            headline[f"in memory: {name.replace('_', '-')} on deterministic links"] = (
                memory_links.get(name)
            )
    headline.update(_generic_values_headline(results.get("generic_values")))
    results["headline"] = headline
    results["machine"]["load_after"] = os.getloadavg()

    core_rate = core["events_per_s"] if core else None
    json_path = args.output_dir / f"{stamp}.json"
    chart_path = args.output_dir / f"{stamp}.png"
    if phases:
        saturation = results["pipeline"]["saturation_events_per_s"]
        write_chart(
            chart_path,
            phases,
            {**ceilings, "identity core, in memory": core_rate, "omnid at saturation": saturation},
            f"omnid bench {stamp}: {spec.events:,} events, {spec.customers:,} customers, "
            f"{plan.workers} worker(s), {plan.guarantee}, {os.cpu_count()} cores",
        )
        results["chart"] = chart_path.name  # next to the JSON
    for phase in phases:
        phase.pop("latencies_ms", None)  # in the chart; too long for the JSON
    write_json(json_path, results)
    for line in summary_lines(results):
        print(line)
    print(f"results: {json_path}" + (f"\nchart:   {chart_path}" if phases else ""))
    return 0


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_before": os.getloadavg(),
        "kafka_bootstrap": Settings().kafka_bootstrap,
    }


def _workload_facts(labelled: Sequence[LabelledEvent], truth: GroundTruth) -> dict[str, Any]:
    return {
        "distinct_event_ids": len({e.record["event_id"] for e in labelled}),
        "duplicates": sum(e.is_duplicate for e in labelled),
        "events_without_identifier": sum(1 for e in labelled if not e.record["identifiers"]),
        "customer_identifiers": len(truth.owner_by_key),
        "customers_seen": len(set(truth.owner_by_key.values())),
        "shared_identifiers": len(truth.shared_keys),
        "junk_identifiers": len(truth.junk_keys),
        "generic_identifiers": dict(sorted(Counter(truth.generic_kinds.values()).items())),
        "customers_per_generic_identifier_max": max(
            (len(who) for who in truth.generic_claimants.values()), default=0
        ),
    }


def _expected_groups(labelled: Sequence[LabelledEvent]) -> dict[str, str]:
    """The partition a perfect resolver reaches: components of the deterministic links."""
    groups = union_find_components(list(linked_key_sets(labelled)))
    members: dict[Any, list[str]] = {}
    for key, label in groups.assignment.items():
        members.setdefault(label, []).append(key)
    return assignment_of_groups(members.values())


def _graph_key_sets(labelled: Sequence[LabelledEvent]) -> list[tuple[str, ...]]:
    """What the pipeline links: each valid event's usable identifiers under the identity rules
    (normalised, blocklist applied, shared tablet included: only limits stop it)."""
    from omnid.identity.intake import usable_identifiers
    from omnid.identity.model import event_from_record
    from omnid.identity.rules import NormalisationCache

    rules = load_rules(Settings().rules_file)
    cache = NormalisationCache(rules)
    key_sets = []
    for event in labelled:
        if not event.record["identifiers"]:
            continue
        usable, _ = usable_identifiers(rules, event_from_record(event.record).identifiers, cache)
        if usable:
            key_sets.append(tuple(i.key for i in usable))
    return key_sets


def _batch(labelled: Sequence[LabelledEvent]) -> dict[str, Any]:
    """Baseline (c): one batch pass of connected components over the same links, two ways."""
    key_sets = _graph_key_sets(labelled)
    batch = scipy_components(key_sets)
    oracle = union_find_components(key_sets)
    return {
        "links_from": "usable identifiers of every valid event under the identity rules",
        "scipy": _components_facts(batch, len(labelled)),
        "union_find": _components_facts(oracle, len(labelled)),
        "same_grouping": same_partition(batch.assignment, oracle.assignment),
    }


def _components_facts(components: Any, events: int) -> dict[str, Any]:
    return {
        "seconds": components.seconds,
        "identifiers": components.identifiers,
        "links": components.links,
        "components": components.count,
        "events_per_s": events / components.seconds if components.seconds else None,
    }


def _memory_engine(
    spec: WorkloadSpec, required: bool, expected: dict[str, str], shared_keys: set[str]
) -> dict[str, Any]:
    """The in-memory engine is the identity core's (omnid.benchmarks.memory: `run(spec) -> dict`),
    with the resolution quality of its final profiles."""
    try:
        memory = importlib.import_module("omnid.benchmarks.memory")
    except ImportError:
        if required:
            raise ConfigError(
                "the memory engine (omnid.benchmarks.memory) is not in this build"
            ) from None
        return {"skipped": "omnid.benchmarks.memory is not in this build"}
    result: dict[str, Any] = memory.run(spec, expected=expected, shared_keys=shared_keys)
    return result


def _kafka(
    args: argparse.Namespace,
    plan: Any,
    labelled: Sequence[LabelledEvent],
    run_id: str,
    expected: dict[str, str],
    truth: GroundTruth,
) -> dict[str, Any]:
    from omnid.benchmarks.feed import encode_events
    from omnid.benchmarks.kafka_baselines import (
        faust_forward_baseline,
        passthrough_baseline,
        quix_count_baseline,
    )
    from omnid.contracts import AvroCodec

    settings = Settings()
    config = settings.kafka_client_config()
    encoded = list(encode_events(AvroCodec.from_settings(settings), (e.record for e in labelled)))
    work_dir = Path(os.environ.get("TMPDIR", "/tmp")) / run_id
    out: dict[str, Any] = {}
    if not args.skip_baselines:
        started = time.monotonic()
        replayed = [encoded[i % len(encoded)] for i in range(max(args.baseline_events, 1))]
        out["baselines"] = {
            "events": len(replayed),
            "passthrough": passthrough_baseline(config, replayed, run_id, args.partitions),
            "faust_forward": faust_forward_baseline(
                config, replayed, run_id, args.partitions, work_dir / "faust"
            ),
            "quix_count_exactly_once": quix_count_baseline(
                config, replayed, run_id, args.partitions, work_dir / "quix"
            ),
        }
        out["baselines"]["seconds"] = time.monotonic() - started
    if not args.skip_pipeline:
        from omnid.benchmarks.pipeline_run import run_pipeline

        pipeline = run_pipeline(config, encoded, plan, run_id, work_dir / "pipeline")
        predicted = assignment_of_profiles(pipeline.pop("profiles").values())
        saturation = next((p for p in pipeline["phases"] if p["phase"] == "saturation"), None)
        pipeline["saturation_events_per_s"] = (
            saturation["achieved_events_per_s"] if saturation else None
        )
        pipeline["active_profiles"] = len(set(predicted.values()))
        pipeline["identifiers"] = len(predicted)
        pipeline["state_bytes_per_identifier"] = (
            pipeline["state_bytes"] / len(predicted) if predicted else None
        )
        out["pipeline"] = pipeline
        mixed = mixed_profiles(expected, predicted)
        members = invert(predicted)
        out["quality"] = {
            "deterministic_links": pairwise_quality(expected, predicted).as_dict(),
            "over_merged_profiles": len(mixed),
            "over_merged_profiles_holding_a_shared_device": sum(
                1 for profile in mixed if members[profile] & truth.shared_keys
            ),
            "profiles_holding_a_shared_device": sum(
                1 for keys in members.values() if keys & truth.shared_keys
            ),
            "under_merged_groups_touching_an_over_merged_profile": _split_near_mixed(
                expected, predicted, set(mixed)
            ),
            "customers": pairwise_quality(truth.owner_by_key, predicted).as_dict(),
            "note": "deterministic_links is the target (what the events can prove); customers "
            "also counts links no event shows, so its recall is below 1 by design",
        }
    return out


def _split_near_mixed(
    expected: dict[str, str], predicted: dict[str, str], mixed: set[str]
) -> dict[str, int]:
    """How many split groups there are, and how many of them have a piece in a mixed profile
    (a merge refused because that profile was already full of other customers' identifiers)."""
    profiles_of: dict[str, set[str]] = {}
    for key, group in expected.items():
        profiles_of.setdefault(group, set()).add(predicted.get(key, f"missing:{key}"))
    split = [profiles for profiles in profiles_of.values() if len(profiles) > 1]
    return {
        "split_groups": len(split),
        "touching_an_over_merged_profile": sum(1 for p in split if p & mixed),
    }


def _generic_values_headline(generic: dict[str, Any] | None) -> dict[str, Any]:
    """Precision and recall with and without quarantine, and the detection delay."""
    if not generic:
        return {}
    headline: dict[str, Any] = {}
    for name in ("precision", "recall"):
        for run in ("with", "without"):
            links = generic[f"{run}_quarantine"]["deterministic_links"]
            headline[f"generic values, in memory: {name} {run} quarantine"] = links[name]
    detection = generic["detection"]
    delay = detection["delay_events"]
    headline["generic values: quarantined / typed in for 2+ customers"] = (
        f"{detection['quarantined']} / {detection['typed_in_for_two_or_more_customers']}"
    )
    claims = detection["delay_claims"]
    customers = detection["customers_when_quarantined"]
    headline["generic values: detection delay in events, median (max)"] = (
        f"{delay['median']} ({delay['max']})" if delay["values"] else None
    )
    headline["generic values: events carrying the value in that delay, median (max)"] = (
        f"{claims['median']} ({claims['max']})" if claims["values"] else None
    )
    headline["generic values: customers it was typed in for when caught, median (max)"] = (
        f"{customers['median']} ({customers['max']})" if customers["values"] else None
    )
    return {k: v for k, v in headline.items() if v is not None}


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    pipeline = results.get("pipeline", {})
    baselines = results.get("baselines", {})
    omnid_rate = pipeline.get("saturation_events_per_s")
    passthrough = baselines.get("passthrough", {}).get("events_per_s")
    faust = baselines.get("faust_forward", {}).get("events_per_s")
    quix = baselines.get("quix_count_exactly_once", {}).get("events_per_s")
    at_1000 = next(
        (p for p in pipeline.get("phases", []) if p.get("offered_events_per_s") == 1000), None
    )
    quality = results.get("quality", {}).get("deterministic_links", {})
    headline = {
        "omnid sustained events/s (saturation)": omnid_rate,
        "pass-through ceiling events/s": passthrough,
        "Faust forward-only events/s": faust,
        "omnid / pass-through": ratio(omnid_rate, passthrough),
        "quix-streams stateful count (exactly-once) events/s": quix,
        "omnid / Faust forward-only (target >= 0.3)": ratio(omnid_rate, faust),
        "omnid / quix-streams stateful count": ratio(omnid_rate, quix),
        "p99 ms at 1,000 ev/s offered (target < 100)": (
            at_1000["latency"]["p99_ms"] if at_1000 and at_1000["latency"] else None
        ),
        "precision on deterministic links (target 1.0)": quality.get("precision"),
        "recall on deterministic links (target 1.0)": quality.get("recall"),
        "over-merges": quality.get("over_merges"),
        "under-merges": quality.get("under_merges"),
        "merges/s at saturation": pipeline.get("merges_per_s_at_saturation"),
        "worker peak RSS MiB": (pipeline.get("peak_rss_bytes") or 0) / 2**20 or None,
        "RocksDB bytes per identifier": pipeline.get("state_bytes_per_identifier"),
    }
    return {k: v for k, v in headline.items() if v is not None}
