"""End-to-end latency and sustained throughput of the Kafka pipeline on this machine.

Latency: from the broker acknowledging an event (producer delivery report) to a consumer seeing
the first ProfileUpdate caused by that event on omnid.profile-updates, at a fixed offered rate.
Throughput: a burst of events published at once, divided by the time until the last of them has
its profile update. Two worker processes, exactly-once, an isolated copy of the topology.

    python bench/pipeline_latency.py [--rate 200] [--latency-events 2000] [--burst-events 4000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from omnid.benchmarks.workload import WorkloadSpec, channel_events
from omnid.config import PROJECT_ROOT, Settings
from omnid.contracts import (
    CHANNEL_EVENT,
    AvroCodec,
    OutputSender,
    events_topic,
    first_identifier_key,
)
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.testing.workers import running_pipeline

RESULTS = PROJECT_ROOT / "bench" / "results" / "pipeline_latency.json"


class UpdateWatcher(threading.Thread):
    """Records when each event id first shows up as the cause of a profile update."""

    def __init__(self, config: dict[str, str], topic: str, codec: AvroCodec) -> None:
        super().__init__(daemon=True)
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.codec = codec
        self.consumer = Consumer(
            {
                **config,
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.subscribe([topic])

    def run(self) -> None:
        while not self.stop.is_set():
            for message in self.consumer.consume(500, timeout=0.05):
                if message.error() or message.value() is None:
                    continue
                now = time.monotonic()
                cause = self.codec.decode(message.value()).record["cause"].get("event_id")
                if cause is not None and cause not in self.seen:
                    self.seen[cause] = now
        self.consumer.close()


def publish(
    config: dict[str, str],
    prefix: str,
    records: list[dict[str, Any]],
    codec: AvroCodec,
    rate: float | None,
) -> dict[str, float]:
    """Publishes at `rate` events/s (None: as fast as possible); event id -> broker ack time."""
    acked: dict[str, float] = {}
    producer = Producer({**config, "enable.idempotence": True, "linger.ms": 1})
    sender = OutputSender(producer)
    started = time.monotonic()
    for index, record in enumerate(records):
        if rate:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        key = first_identifier_key(record)
        event_id = record["event_id"]

        def delivered(error: Any, _message: Any, event_id: str = event_id) -> None:
            if error is None:
                acked.setdefault(event_id, time.monotonic())

        sender.send(
            events_topic(record["channel"], prefix),
            key.encode() if key else None,
            codec.encode(CHANNEL_EVENT, record),
            on_delivery=delivered,
        )
        producer.poll(0)
    producer.flush(60)
    return acked


def wait_for(watcher: UpdateWatcher, event_ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not event_ids <= watcher.seen.keys():
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="offered events/s for latency")
    parser.add_argument("--latency-events", type=int, default=2000)
    parser.add_argument("--burst-events", type=int, default=4000)
    parser.add_argument("--guarantee", default="exactly_once")
    args = parser.parse_args()

    settings = Settings()
    config = settings.kafka_client_config()
    codec = AvroCodec.from_settings(settings)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    topology = load_topology(settings.topics_file)
    apply_topics(config, topology, prefix)
    # Events without a usable identifier never cause an update: leave them out of the timing.
    spec = WorkloadSpec(
        customers=max(50, args.latency_events // 10),
        events=args.latency_events + args.burst_events,
        seed=13,
        no_identifier_rate=0.0,
        junk_rate=0.0,
        duplicate_rate=0.0,
    )
    records = list(channel_events(spec))
    latency_part, burst_part = records[: args.latency_events], records[args.latency_events :]
    try:
        with (
            tempfile.TemporaryDirectory() as base,
            running_pipeline(
                config, prefix, Path(base), workers=2, guarantee=args.guarantee
            ) as pipeline,
        ):
            pipeline.wait_until_assigned(topology.topics[0].partitions)
            watcher = UpdateWatcher(config, pipeline.topics.profile_updates, codec)
            watcher.start()

            acked = publish(config, prefix, latency_part, codec, args.rate)
            wait_for(watcher, set(acked), 120)
            latencies = [(watcher.seen[e] - acked[e]) * 1000 for e in acked if e in watcher.seen]

            burst_started = time.monotonic()
            burst_acked = publish(config, prefix, burst_part, codec, None)
            wait_for(watcher, set(burst_acked), 300)
            burst_done = max(watcher.seen.get(e, time.monotonic()) for e in burst_acked)
            watcher.stop.set()
            watcher.join(5)
    finally:
        delete_topics(config, topology.names(prefix).values())

    result = {
        "command": "python bench/pipeline_latency.py "
        f"--rate {args.rate:g} --latency-events {args.latency_events} "
        f"--burst-events {args.burst_events} --guarantee {args.guarantee}",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "workers": 2,
        "partitions": topology.topics[0].partitions,
        "guarantee": args.guarantee,
        "latency": {
            "offered_rate_eps": args.rate,
            "events": len(latencies),
            "missing": len(acked) - len(latencies),
            "p50_ms": round(percentile(latencies, 0.50), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "mean_ms": round(statistics.fmean(latencies), 1),
        },
        "throughput": {
            "events": len(burst_acked),
            "seconds": round(burst_done - burst_started, 2),
            "events_per_s": round(len(burst_acked) / (burst_done - burst_started), 1),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
