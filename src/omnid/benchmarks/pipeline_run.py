"""The omnid pipeline on the real broker: offered-load phases, then a saturating burst.

Latency of an event = first ProfileUpdate that shows it (its `events` header, or its cause), as
seen by a consumer in this process, minus the moment this process produced it (one wall clock).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from omnid.benchmarks.feed import EncodedEvent
from omnid.benchmarks.kafka_baselines import end_offsets
from omnid.benchmarks.measures import rate, summarise_latencies
from omnid.config import Settings
from omnid.contracts import AvroCodec, OutputSender
from omnid.identity.rendering import ChangeKind
from omnid.kafka.reader import read_records
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.pipeline.processor import EVENTS_HEADER
from omnid.pipeline.topic_names import PipelineTopics
from omnid.testing.topic_io import latest_profiles
from omnid.testing.workers import running_pipeline


@dataclass(frozen=True)
class PipelinePlan:
    """Offered loads (events/s) run for `phase_seconds` each, then `saturation_events` at once."""

    offered_loads: tuple[int, ...] = (250, 1_000, 2_000)
    phase_seconds: float = 8.0
    saturation_events: int = 10_000
    workers: int = 1
    guarantee: str = "exactly_once"
    drain_timeout_s: float = 600.0

    def events_needed(self) -> int:
        return (
            sum(int(load * self.phase_seconds) for load in self.offered_loads)
            + self.saturation_events
        )


@dataclass
class _Watch:
    """What the background watcher has seen so far (read under the lock)."""

    first_update_at: dict[str, float] = field(default_factory=dict)  # event_id -> wall s
    watched_shown: int = 0  # how many of the watcher's `watched` ids an update has shown
    updates: int = 0
    tombstones: int = 0
    peak_rss: int = 0
    last_rss: int = 0
    rss_series: list[tuple[float, int]] = field(default_factory=list)  # (wall s, bytes)
    cpu_s: float = 0.0  # user + system seconds of the workers, start-up included
    latest: dict[str, bytes | None] = field(default_factory=dict)  # key -> last value (keep_latest)
    positions: dict[int, int] = field(default_factory=dict)  # partition -> next offset to read


class UpdateWatcher(threading.Thread):
    """Reads profile updates as they appear and samples the workers' memory. Counts how many of
    the `watched` event ids have been shown (bench-scale's closed loop waits on that), and with
    `keep_latest` keeps each profile's last update (undecoded) for the final check."""

    def __init__(
        self,
        config: Mapping[str, str],
        topic: str,
        codec: AvroCodec,
        watched: AbstractSet[str] = frozenset(),
        keep_latest: bool = False,
    ) -> None:
        super().__init__(name="omnid-bench-watcher", daemon=True)
        self.consumer = Consumer(
            {
                **config,
                "group.id": f"omnid-bench-watch-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.assigned = [TopicPartition(topic, p, 0) for p in partitions]
        self.consumer.assign(self.assigned)
        self.codec = codec
        self.watched = watched
        self.keep_latest = keep_latest
        self.lock = threading.Lock()
        self.seen = _Watch()
        self.pids: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        next_sample = 0.0
        try:
            while not self.stopping.is_set():
                # consume(n, timeout) waits out its whole timeout unless n records came: an
                # update would be seen up to 50 ms late. poll returns on the first record, and
                # what has arrived with it is taken without waiting.
                first = self.consumer.poll(0.05)
                if first is not None:
                    arrived = time.time()
                    for message in [first, *self.consumer.consume(500, timeout=0)]:
                        if message.error() is None:
                            self._record(message, arrived)
                if self.keep_latest:
                    # Positions, not offsets seen: a transaction's commit marker takes one too.
                    positions = self.consumer.position(self.assigned)
                    with self.lock:
                        self.seen.positions = {tp.partition: tp.offset for tp in positions}
                if time.monotonic() >= next_sample:
                    self._sample_memory()
                    next_sample = time.monotonic() + 0.5
        finally:
            self.consumer.close()

    def _record(self, message: Message, arrived: float) -> None:
        value = message.value()
        # A worker publishes one update per profile per batch, naming the events it shows (a
        # tombstone names those of a profile merged away in the batch).
        shown = dict(message.headers() or []).get(EVENTS_HEADER)
        if shown is not None:
            event_ids: list[str | None] = list(shown.decode().split(","))
        elif value is not None:
            event_ids = [self.codec.decode(value).record["cause"]["event_id"]]
        else:
            event_ids = []
        with self.lock:
            if self.keep_latest:
                self.seen.latest[(message.key() or b"").decode()] = value
            if value is None:
                self.seen.tombstones += 1
            else:
                self.seen.updates += 1
            for event_id in event_ids:
                if event_id is not None and event_id not in self.seen.first_update_at:
                    self.seen.first_update_at[event_id] = arrived
                    if event_id in self.watched:
                        self.seen.watched_shown += 1

    def _sample_memory(self) -> None:
        total = 0
        cpu_s = 0.0
        for pid in self.pids:
            try:
                process = psutil.Process(pid)
                total += process.memory_info().rss
                cpu_s += sum(process.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        with self.lock:
            self.seen.cpu_s = max(self.seen.cpu_s, cpu_s)
            self.seen.last_rss = total
            self.seen.rss_series.append((time.time(), total))
            self.seen.peak_rss = max(self.seen.peak_rss, total)

    def latest_once_read_to(
        self, ends: Mapping[int, int], timeout: float
    ) -> dict[str, bytes | None] | None:
        """The last update of each key (keep_latest) once every partition is read to its offset
        in `ends`; None if that takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                positions = dict(self.seen.positions)
                if all(positions.get(p, 0) >= end for p, end in ends.items()):
                    return dict(self.seen.latest)
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def _send(
    producer: Producer,
    prefix: str,
    events: Sequence[EncodedEvent],
    already_sent: Mapping[str, float],
    per_second: float | None,
) -> dict[str, float]:
    """Produce `events`, paced at `per_second` (None: as fast as the client takes them).

    Returns when each event id new to this phase was first produced; a redelivery of an event
    from an earlier phase is sent but not timed, since its profile update came long ago.
    """
    produced_at: dict[str, float] = {}
    sender = OutputSender(producer)
    started = time.perf_counter()
    for index, event in enumerate(events):
        if per_second is not None:
            delay = started + index / per_second - time.perf_counter()
            if delay > 0.001:
                time.sleep(delay)
        if event.event_id not in already_sent:
            produced_at.setdefault(event.event_id, time.time())
        sender.send(event.topic(prefix), event.key, event.value)
        producer.poll(0)
    producer.flush(120)
    return produced_at


def _phase_result(
    name: str,
    offered: float | None,
    events: Sequence[EncodedEvent],
    produced_at: Mapping[str, float],
    first_update_at: Mapping[str, float],
) -> dict[str, Any]:
    ids = set(produced_at)
    latencies = [(first_update_at[i] - produced_at[i]) * 1_000 for i in ids if i in first_update_at]
    started = min(produced_at[i] for i in ids)
    updated = [first_update_at[i] for i in ids if i in first_update_at]
    finished = max(updated, default=started)
    # Achieved rate = the output rate (first to last profile update of the phase's events), as
    # for the Faust baseline: a paced phase is not charged the latency of its last event.
    output_span_s = finished - min(updated, default=finished)
    summary = summarise_latencies(latencies)
    return {
        "phase": name,
        "offered_events_per_s": offered,
        "events": len(events),
        "new_event_ids": len(ids),
        "events_with_update": len(latencies),
        "achieved_events_per_s": rate(len(updated), output_span_s),
        "output_span_s": output_span_s,
        "window_s": finished - started,
        "window": [started, finished],
        "latency": summary.as_dict() if summary else None,
        "latencies_ms": sorted(latencies),
    }


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_pipeline(
    config: Mapping[str, str],
    events: Sequence[EncodedEvent],
    plan: PipelinePlan,
    run_id: str,
    work_dir: Path,
) -> dict[str, Any]:
    """Runs the phases on a fresh copy of the topology; returns measurements and final profiles.

    The final profiles come back under "profiles" for the quality check; the caller drops them
    before writing results.
    """
    settings = Settings()
    codec = AvroCodec.from_settings(settings)
    topology = load_topology(settings.topics_file)
    prefix = run_id
    apply_topics(config, topology, prefix)
    work_dir.mkdir(parents=True, exist_ok=True)
    phases: list[tuple[str, float | None, Sequence[EncodedEvent]]] = []
    offset = 0
    for load in plan.offered_loads:
        count = int(load * plan.phase_seconds)
        phases.append((f"offered-{load}", float(load), events[offset : offset + count]))
        offset += count
    phases.append(("saturation", None, events[offset : offset + plan.saturation_events]))
    try:
        with running_pipeline(
            config, prefix, work_dir, workers=plan.workers, guarantee=plan.guarantee
        ) as pipeline:
            started = time.monotonic()
            pipeline.wait_until_assigned(6, timeout=180)
            startup_s = time.monotonic() - started
            watcher = UpdateWatcher(config, pipeline.topics.profile_updates, codec)
            watcher.pids = [w.process.pid for w in pipeline.workers if w.process is not None]
            watcher.start()
            producer = Producer({**config, "linger.ms": 1, "enable.idempotence": True})
            produced_at: dict[str, float] = {}
            results = []
            drain_s: list[float] = []
            try:
                for name, offered, phase_events in phases:
                    if not phase_events:
                        continue
                    phase_produced_at = _send(producer, prefix, phase_events, produced_at, offered)
                    produced_at.update(phase_produced_at)
                    drained_from = time.monotonic()
                    pipeline.wait_drained(timeout=plan.drain_timeout_s)
                    drain_s.append(time.monotonic() - drained_from)
                    time.sleep(0.5)  # let the watcher read the last updates of the phase
                    with watcher.lock:
                        first_update_at = dict(watcher.seen.first_update_at)
                    results.append(
                        _phase_result(
                            name, offered, phase_events, phase_produced_at, first_update_at
                        )
                    )
            finally:
                watcher.stop()
            state_bytes = sum(_dir_bytes(w.data_dir) for w in pipeline.workers)
            profiles = latest_profiles(config, pipeline.topics, codec)
            merges = _merge_times(config, pipeline.topics.identity_changelog, codec)
            dead_letters = end_offsets(config, pipeline.topics.dead_letter)
        saturation = next((r for r in results if r["phase"] == "saturation"), None)
        merges_per_s = None
        if saturation and saturation["window_s"]:
            low, high = saturation["window"]
            in_window = sum(1 for at in merges if low <= at <= high)
            merges_per_s = in_window / saturation["window_s"]
        return {
            "prefix": prefix,
            "workers": plan.workers,
            "guarantee": plan.guarantee,
            "startup_s": startup_s,
            "phases": results,
            "drain_wait_s": drain_s,
            "profile_updates": watcher.seen.updates,
            "tombstones": watcher.seen.tombstones,
            "merges": len(merges),
            "merges_per_s_at_saturation": merges_per_s,
            "dead_letters": dead_letters,
            "peak_rss_bytes": watcher.seen.peak_rss,
            "final_rss_bytes": watcher.seen.last_rss,
            "worker_cpu_s": watcher.seen.cpu_s,
            "state_bytes": state_bytes,
            "profiles": profiles,
        }
    finally:
        # The worker creates its state changelogs and roster itself; not in the topology file.
        created = PipelineTopics.under(prefix).created_by_workers()
        delete_topics(config, [*topology.names(prefix).values(), *created])


def _merge_times(config: Mapping[str, str], topic: str, codec: AvroCodec) -> list[float]:
    """When (wall-clock seconds, the record timestamp the worker wrote) each merge happened."""
    return [
        record.timestamp / 1_000
        for record in read_records(config, topic, idle_s=3.0)
        if record.value is not None
        and codec.decode(record.value).record["kind"] == ChangeKind.MERGED
    ]
