"""`omnid bench-scale`: omnid on a graph of realistic size (default 1,000,000 events over 200,000
customers) on the real broker, with the workers as separate processes.

The run, in order:
1. The workload is generated and Avro-encoded once (cached under the output directory, so a
   second run starts at once).
2. Saturation: events are produced as fast as the workers take them, with at most `--window`
   countable events that no profile update has shown yet (a closed loop over the whole
   pipeline, every stage included: latency stays a measure of the pipeline, not of a queue
   growing without bound). Throughput and latency are reported for each tenth of these events,
   so the curve over a growing graph is visible; worker RSS is sampled every half second.
3. Paced phases on the grown graph (`--loads`, `--phase-seconds` each): latency at low load.
4. The final profiles' event count is checked against the countable events (invariant 4 at
   scale; only the last update of each profile is decoded). The workers stop; each table is
   compacted and its SST bytes are divided by the identifiers held (RocksDB bytes per
   identifier after a compaction).

Each phase prints its duration as it ends, and the saturation a progress line every 15 s, on
stderr; the results keep the durations (`run.phases_s`).

Results: <output-dir>/scale-<timestamp>.json and .png.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from omnid.benchmarks.feed import EncodedEvent, encode_events
from omnid.benchmarks.measures import rate, summarise_latencies
from omnid.benchmarks.workload import WorkloadSpec, labelled_events
from omnid.config import PROJECT_ROOT, Settings
from omnid.kafka.stages import Table
from omnid.rules_file import load_rules

if TYPE_CHECKING:
    from omnid.benchmarks.pipeline_run import UpdateWatcher
    from omnid.contracts import AvroCodec
    from omnid.pipeline.topic_names import PipelineTopics

TENTHS = 10
# Events produced between two looks at the events in flight.
CHUNK = 500
# Seconds between two progress lines during the saturation.
PROGRESS_EVERY_S = 15.0


class Timeline:
    """The run's phases with their durations, printed as they end (a 10-minute run shows where
    it is) and kept for the results."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phases: dict[str, float] = {}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f} s] {text}", file=sys.stderr, flush=True)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{name} ...")
        yield
        self.phases[name] = round(time.monotonic() - began, 2)
        self.say(f"{name}: {self.phases[name]:.1f} s")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench-scale",
        help="benchmark at scale: sustained throughput, latency and memory over a growing graph",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000, help="saturation events")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--add-worker-at-tenth",
        type=int,
        default=None,
        help="start one more worker when this tenth of the saturation begins (rebalance cost)",
    )
    parser.add_argument("--partitions", type=int, default=None, help="default: topics.yaml")
    parser.add_argument("--window", type=int, default=5_000, help="events in flight at most")
    parser.add_argument("--loads", default="100,1000", help="paced loads after saturation")
    parser.add_argument("--phase-seconds", type=float, default=10.0)
    parser.add_argument(
        "--guarantee", choices=("exactly_once", "at_least_once"), default="exactly_once"
    )
    parser.add_argument("--skip-check", action="store_true", help="skip the profile read-back")
    parser.add_argument(
        "--batch-linger-ms",
        type=float,
        default=None,
        help="the workers' batch gathering time (`omnid worker --batch-linger-ms`)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="the workers' records per batch at most (`omnid worker --batch-size`)",
    )
    parser.add_argument("--output-dir", type=Path, default=PROJECT_ROOT / "bench" / "results")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loads = [int(x) for x in args.loads.split(",") if x.strip()]
    paced_events = sum(int(load * args.phase_seconds) for load in loads)
    spec = WorkloadSpec(customers=args.customers, events=args.events + paced_events, seed=args.seed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    timeline = Timeline()
    with timeline.phase(f"workload ({spec.events:,} events, {spec.customers:,} customers)"):
        events, countable = cached_workload(spec, args.output_dir / ".cache")
    prepared_s = time.monotonic() - timeline.started
    results: dict[str, Any] = {
        "kind": "omnid bench-scale",
        "started_at": stamp,
        "command": shlex.join(["omnid", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": os.getloadavg(),
        },
        "workload": {**spec.__dict__, "saturation_events": args.events, "prepare_s": prepared_s},
    }
    results["run"] = run_scale(
        args, events[: args.events], events[args.events :], loads, countable, timeline
    )
    results["machine"]["load_after"] = os.getloadavg()
    results["run"]["total_s"] = time.monotonic() - timeline.started
    results["run"]["phases_s"] = timeline.phases
    json_path = args.output_dir / f"scale-{stamp}.json"
    chart_path = args.output_dir / f"scale-{stamp}.png"
    write_scale_chart(chart_path, results)
    results["chart"] = chart_path.name
    from omnid.benchmarks.report import write_json

    write_json(json_path, results)
    for line in scale_summary(results):
        print(line)
    print(f"results: {json_path}\nchart:   {chart_path}")
    return 0


def cached_workload(spec: WorkloadSpec, cache_dir: Path) -> tuple[list[EncodedEvent], set[str]]:
    """The workload's encoded events and the ids of those the pipeline must count (at least one
    usable identifier, as the ingest stage decides), made once per spec and kept in `cache_dir`."""
    from omnid.contracts import AvroCodec
    from omnid.errors import InvalidEvent
    from omnid.identity.intake import commands_for_event
    from omnid.identity.model import event_from_record
    from omnid.identity.rules import NormalisationCache

    path = cache_dir / f"workload-v3-{spec.customers}-{spec.events}-{spec.seed}.msgpack"
    if not path.exists():
        rules = load_rules(Settings().rules_file)
        codec = AvroCodec.from_settings()
        normalisations = NormalisationCache(rules)
        rows = []
        for labelled in labelled_events(spec):
            try:
                commands_for_event(rules, event_from_record(labelled.record), normalisations)
                countable = True
            except InvalidEvent:
                countable = False
            (event,) = encode_events(codec, [labelled.record])
            rows.append((event.event_id, event.channel, event.key, event.value, countable))
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(msgspec.msgpack.encode(rows))
        partial.rename(path)
    rows = msgspec.msgpack.decode(path.read_bytes())
    return [EncodedEvent(*row[:4]) for row in rows], {row[0] for row in rows if row[4]}


def run_scale(
    args: argparse.Namespace,
    saturation: Sequence[EncodedEvent],
    paced: Sequence[EncodedEvent],
    loads: Sequence[int],
    countable: set[str],
    timeline: Timeline,
) -> dict[str, Any]:
    from confluent_kafka import Producer

    from omnid.benchmarks.pipeline_run import UpdateWatcher, _send
    from omnid.contracts import AvroCodec, OutputSender
    from omnid.kafka.topics import apply_topics, delete_topics, load_topology
    from omnid.kafka.topology import Topology
    from omnid.pipeline.topic_names import PipelineTopics
    from omnid.testing.oracle import totals
    from omnid.testing.workers import running_pipeline

    settings = Settings()
    config = settings.kafka_client_config()
    codec = AvroCodec.from_settings(settings)
    topology = load_topology(settings.topics_file)
    if args.partitions:
        topology = Topology(
            topics=tuple(
                t.model_copy(update={"partitions": args.partitions}) for t in topology.topics
            )
        )
    partitions = max(t.partitions for t in topology.topics)
    prefix = f"omnid-scale-{uuid.uuid4().hex[:8]}"
    work_dir = Path(os.environ.get("TMPDIR", "/tmp")) / prefix
    work_dir.mkdir(parents=True)
    apply_topics(config, topology, prefix)
    topics = PipelineTopics.under(prefix)
    worker_options = (
        *(
            ("--batch-linger-ms", str(args.batch_linger_ms))
            if args.batch_linger_ms is not None
            else ()
        ),
        *(("--batch-size", str(args.batch_size)) if args.batch_size is not None else ()),
    )
    out: dict[str, Any] = {
        "workers": args.workers,
        "partitions": partitions,
        "guarantee": args.guarantee,
        "window": args.window,
        "worker_options": list(worker_options),
    }
    try:
        with running_pipeline(
            config,
            prefix,
            work_dir,
            workers=args.workers,
            guarantee=args.guarantee,
            worker_options=worker_options,
        ) as pipeline:
            with timeline.phase(f"{args.workers} worker(s) start and own {partitions} partitions"):
                began = time.monotonic()
                pipeline.wait_until_assigned(partitions, timeout=300)
                out["startup_s"] = time.monotonic() - began
            # The closed loop: the countable events produced that no update has shown yet.
            watcher = UpdateWatcher(
                config,
                topics.profile_updates,
                codec,
                watched=countable,
                keep_latest=not args.skip_check,
            )
            watcher.pids = [w.process.pid for w in pipeline.workers if w.process is not None]
            watcher.start()
            producer = Producer({**config, "linger.ms": 5, "enable.idempotence": True})
            sender = OutputSender(producer)
            produced_at: dict[str, float] = {}
            tenth_size = -(-len(saturation) // TENTHS)
            produced_countable = 0
            added_at: float | None = None
            try:
                with timeline.phase(f"saturation ({len(saturation):,} events)"):
                    saturation_began = time.time()
                    progress = SaturationProgress(timeline, watcher, len(saturation))
                    for index in range(0, len(saturation), CHUNK):
                        join_at = args.add_worker_at_tenth
                        if (
                            join_at is not None
                            and added_at is None
                            and index >= join_at * tenth_size
                        ):
                            worker = pipeline.add_worker(
                                "worker-joined", args.guarantee, options=worker_options
                            )
                            added_at = time.time()
                            assert worker.process is not None
                            watcher.pids.append(worker.process.pid)
                        while produced_countable - watcher.seen.watched_shown > args.window:
                            time.sleep(0.02)
                            progress.maybe_say(index)  # also while the workers are stuck
                        for event in saturation[index : index + CHUNK]:
                            if event.event_id not in produced_at:
                                produced_at[event.event_id] = time.time()
                                produced_countable += event.event_id in countable
                            sender.send(event.topic(prefix), event.key, event.value)
                        producer.poll(0)
                        progress.maybe_say(index)
                    producer.flush(120)
                    pipeline.wait_drained(timeout=1_800)
                    time.sleep(1.0)  # the watcher reads the last updates
                with watcher.lock:
                    first_update_at = dict(watcher.seen.first_update_at)
                    rss_series = list(watcher.seen.rss_series)
                out["saturation"] = saturation_result(
                    saturation, produced_at, first_update_at, rss_series, saturation_began
                )
                out["saturation"]["worker_joined_at_s"] = (
                    added_at - saturation_began if added_at is not None else None
                )
                phases = []
                offset = 0
                for load in loads:
                    phase_events = paced[offset : offset + int(load * args.phase_seconds)]
                    offset += len(phase_events)
                    with timeline.phase(f"paced {load} events/s ({len(phase_events):,} events)"):
                        phase_produced = _send(producer, prefix, phase_events, produced_at, load)
                        produced_at.update(phase_produced)
                        pipeline.wait_drained(timeout=300)
                        time.sleep(0.5)
                    with watcher.lock:
                        seen = dict(watcher.seen.first_update_at)
                    latencies = [
                        (seen[i] - at) * 1_000 for i, at in phase_produced.items() if i in seen
                    ]
                    summary = summarise_latencies(latencies)
                    phases.append(
                        {
                            "offered_events_per_s": load,
                            "events": len(phase_events),
                            "events_with_update": len(latencies),
                            "latency": summary.as_dict() if summary else None,
                        }
                    )
                out["paced"] = phases
                if not args.skip_check:
                    with timeline.phase("check: the final profiles count every event once"):
                        profiles = final_profiles(config, topics, codec, watcher)
                        counted = totals(profiles)["events"]
                    out["check"] = {
                        "countable_events": len(countable),
                        "events_counted_by_final_profiles": counted,
                        "events_named_by_updates": len(watcher.seen.first_update_at),
                        "every_event_counted_once": counted == len(countable),
                    }
            finally:
                watcher.stop()
            out["peak_rss_bytes"] = watcher.seen.peak_rss
            out["worker_cpu_s"] = watcher.seen.cpu_s
            with timeline.phase("workers stop"):
                for worker in pipeline.workers:
                    worker.stop()
        with timeline.phase("compaction"):
            out["state"] = compacted_state([w.data_dir for w in pipeline.workers])
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # a million events leave ~0.5 GB of state
        delete_topics(config, [*topology.names(prefix).values(), *topics.created_by_workers()])
    return out


class SaturationProgress:
    """A progress line every PROGRESS_EVERY_S seconds of the saturation: events produced, events
    shown by an update, the rate since the last line, worker RSS."""

    def __init__(self, timeline: Timeline, watcher: UpdateWatcher, events: int) -> None:
        self.timeline = timeline
        self.watcher = watcher
        self.events = events
        self.last_at = time.monotonic()
        self.last_shown = 0

    def maybe_say(self, produced: int) -> None:
        now = time.monotonic()
        if now - self.last_at < PROGRESS_EVERY_S:
            return
        with self.watcher.lock:
            shown = len(self.watcher.seen.first_update_at)
            rss = self.watcher.seen.last_rss
        events_per_s = (shown - self.last_shown) / (now - self.last_at)
        left_s = (self.events - shown) / events_per_s if events_per_s else float("inf")
        self.timeline.say(
            f"  produced {produced:,}, shown {shown:,} of {self.events:,}: "
            f"{events_per_s:,.0f} events/s, worker RSS {rss / 2**20:,.0f} MiB, "
            f"~{left_s:,.0f} s to go"
        )
        self.last_at, self.last_shown = now, shown


def saturation_result(
    events: Sequence[EncodedEvent],
    produced_at: dict[str, float],
    first_update_at: dict[str, float],
    rss_series: Sequence[tuple[float, int]],
    began: float,
) -> dict[str, Any]:
    """Per tenth of the run: events/s over the time the tenth's share of updates took to appear
    (updates in arrival order, so tenths never overlap), the latency of the tenth's events (in
    production order) from production to the first update showing them, and worker RSS."""
    ids = list(dict.fromkeys(e.event_id for e in events))
    shown_at = sorted(first_update_at[i] for i in ids if i in first_update_at)
    size = -(-len(ids) // TENTHS)
    shown_size = -(-len(shown_at) // TENTHS)
    tenths = []
    previous_end = began
    for number in range(TENTHS):
        mine = [i for i in ids[number * size : (number + 1) * size] if i in first_update_at]
        arrivals = shown_at[number * shown_size : (number + 1) * shown_size]
        end = arrivals[-1] if arrivals else previous_end
        latencies = [(first_update_at[i] - produced_at[i]) * 1_000 for i in mine]
        summary = summarise_latencies(latencies)
        rss = [r for at, r in rss_series if at <= end]
        tenths.append(
            {
                "tenth": number + 1,
                "events_shown": len(arrivals),
                "events_per_s": rate(len(arrivals), end - previous_end),
                "seconds": end - previous_end,
                "p50_ms": summary.p50_ms if summary else None,
                "p99_ms": summary.p99_ms if summary else None,
                "rss_mib": rss[-1] / 2**20 if rss else None,
            }
        )
        previous_end = end
    seconds = previous_end - began
    first, last = tenths[0]["events_per_s"], tenths[-1]["events_per_s"]
    first_rss, last_rss = tenths[0]["rss_mib"], tenths[-1]["rss_mib"]
    return {
        "events": len(events),
        "distinct_events": len(ids),
        "events_shown": len(shown_at),
        "seconds": seconds,
        "events_per_s": rate(len(shown_at), seconds),
        "last_tenth_vs_first_throughput": last / first if first and last else None,
        "last_tenth_vs_first_rss": last_rss / first_rss if first_rss and last_rss else None,
        "tenths": tenths,
        "rss_series": [(round(at - began, 2), r) for at, r in rss_series if at >= began],
    }


def final_profiles(
    config: dict[str, str], topics: PipelineTopics, codec: AvroCodec, watcher: UpdateWatcher
) -> list[dict[str, Any]]:
    """The last update of every live profile, as the watcher read them during the run (decoded
    only now), once it has read the topic to its committed end: reading a million-event run's
    updates back took 106 s on a loaded machine. Read back from the topic if the watcher does
    not get there within a minute."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from omnid.testing.topic_io import committed_ends, latest_profiles

    topic = topics.profile_updates
    admin = AdminClient(dict(config))
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    ends = committed_ends(config, admin, [TopicPartition(topic, p) for p in partitions])
    latest = watcher.latest_once_read_to({p: end for (_t, p), end in ends.items()}, timeout=60)
    if latest is None:
        return list(latest_profiles(config, topics, codec).values())
    return [codec.decode(value).record for value in latest.values() if value is not None]


# What the bytes-per-identifier target counts: the identity graph. The event history (what a
# split replays) grows with events, not identifiers, and is reported apart.
GRAPH_TABLES = (Table.IDENTIFIERS, Table.PROFILES)


def compacted_state(data_dirs: Sequence[Path]) -> dict[str, Any]:
    """Compacts every table of the (stopped) workers; SST bytes per identifier entry, for the
    graph and for all tables. With more workers a store also keeps partitions it owned before a
    rebalance: those copies count on both sides, so the figure stays a density."""
    from omnid.pipeline.state_store import TableStore

    distinct: set[bytes] = set()
    entries = 0
    sst_bytes = dict.fromkeys((t.value for t in Table), 0)
    for data_dir in data_dirs:
        for table in Table:
            path = data_dir / table.value
            if not path.exists():
                continue
            store = TableStore(path)
            try:
                store.compact()
                if table is Table.IDENTIFIERS:
                    keys = [k for k, _ in store.entries() if not k.startswith(b"\x00")]
                    entries += len(keys)
                    distinct.update(keys)
            finally:
                store.close()
            sst_bytes[table.value] += sum(f.stat().st_size for f in path.glob("*.sst"))
    total = sum(sst_bytes.values())
    graph = sum(sst_bytes[table.value] for table in GRAPH_TABLES)
    return {
        "identifiers": len(distinct),
        "identifier_entries": entries,
        "sst_bytes": sst_bytes,
        "graph_bytes_per_identifier": graph / entries if entries else None,
        "bytes_per_identifier": total / entries if entries else None,
    }


def scale_summary(results: dict[str, Any]) -> list[str]:
    run = results["run"]
    saturation = run.get("saturation", {})
    lines = [
        f"omnid bench-scale: {saturation.get('events', 0):,} events, "
        f"{results['workload']['customers']:,} customers, {run['workers']} worker(s), "
        f"{run['partitions']} partitions, {run['guarantee']}",
        f"sustained events/s: {saturation.get('events_per_s') or 0:,.0f} over "
        f"{saturation.get('seconds') or 0:.0f} s",
    ]
    for tenth in saturation.get("tenths", []):
        lines.append(
            f"  tenth {tenth['tenth']:2}: {tenth['events_per_s'] or 0:8,.0f} ev/s  "
            f"p99 {tenth['p99_ms'] or 0:8,.0f} ms  RSS {tenth['rss_mib'] or 0:6.0f} MiB"
        )
    lines.append(
        f"last/first tenth: throughput {saturation.get('last_tenth_vs_first_throughput') or 0:.2f}"
        f", RSS {saturation.get('last_tenth_vs_first_rss') or 0:.2f}"
    )
    for phase in run.get("paced", []):
        latency = phase["latency"] or {}
        lines.append(
            f"paced {phase['offered_events_per_s']} ev/s on the grown graph: "
            f"p50 {latency.get('p50_ms', 0):.0f} ms, p99 {latency.get('p99_ms', 0):.0f} ms"
        )
    state = run.get("state", {})
    lines.append(
        f"RocksDB bytes per identifier after compaction: graph (identifiers + profiles) "
        f"{state.get('graph_bytes_per_identifier') or 0:.0f}, with the event history "
        f"{state.get('bytes_per_identifier') or 0:.0f} ({state.get('identifiers', 0):,} ids)"
    )
    if "check" in run:
        check = run["check"]
        lines.append(
            f"final profiles count every countable event once (invariant 4): "
            f"{check['every_event_counted_once']} ({check['events_counted_by_final_profiles']:,}"
            f" of {check['countable_events']:,})"
        )
    return lines


def write_scale_chart(path: Path, results: dict[str, Any]) -> None:
    from omnid.benchmarks.report import plt

    saturation = results["run"].get("saturation", {})
    tenths = saturation.get("tenths", [])
    figure, (rate_axis, latency_axis, rss_axis) = plt.subplots(1, 3, figsize=(16, 4.8))
    xs = [t["tenth"] for t in tenths]
    rate_axis.bar(xs, [t["events_per_s"] or 0 for t in tenths], color="tab:blue")
    rate_axis.set_title("Throughput per tenth of the run (events/s)")
    rate_axis.set_xlabel("tenth (graph grows to the right)")
    latency_axis.plot(xs, [t["p99_ms"] or 0 for t in tenths], "o-", label="p99")
    latency_axis.plot(xs, [t["p50_ms"] or 0 for t in tenths], "o-", label="p50")
    latency_axis.set_title("Latency per tenth at saturation (ms)")
    latency_axis.set_xlabel("tenth")
    latency_axis.legend()
    series = saturation.get("rss_series", [])
    rss_axis.plot([at for at, _ in series], [r / 2**20 for _, r in series], color="tab:red")
    rss_axis.set_title("Worker RSS during saturation (MiB)")
    rss_axis.set_xlabel("seconds")
    run = results["run"]
    figure.suptitle(
        f"omnid bench-scale {results['started_at']}: {saturation.get('events', 0):,} events, "
        f"{results['workload']['customers']:,} customers, {run['workers']} worker(s), "
        f"{run['partitions']} partitions, {os.cpu_count()} cores"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
