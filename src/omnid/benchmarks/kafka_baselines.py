"""Peers on the same broker and the same bytes: a confluent-kafka consume->produce loop (what
the broker and client allow), a Faust agent that only forwards (what that framework allows),
and a quix-streams stateful count with exactly-once (what a user would build instead).

Both are measured like the pipeline: preload the input, run the processor, and take the rate
from the first to the last output record's timestamp, so start-up time is left out everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from omnid.benchmarks.feed import EncodedEvent
from omnid.benchmarks.measures import rate
from omnid.contracts import OutputSender
from omnid.kafka.reader import read_records
from omnid.kafka.topics import delete_topics


def create_topics(config: Mapping[str, str], names: Iterable[str], partitions: int) -> None:
    admin = AdminClient(dict(config))
    # The broker stamps each record when it arrives: a rate from output timestamps then means
    # the same for every peer (quix-streams, say, gives an output its input's timestamp).
    stamped = {"message.timestamp.type": "LogAppendTime"}
    futures = admin.create_topics([NewTopic(n, partitions, 1, config=stamped) for n in names])
    for future in futures.values():
        future.result(30)
    wanted = set(futures)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if wanted <= set(admin.list_topics(timeout=10).topics):
            return
        time.sleep(0.2)


def preload(config: Mapping[str, str], topic: str, events: Sequence[EncodedEvent]) -> float:
    """Writes every event to `topic`; returns the producer's rate in events/s."""
    producer = Producer({**config, "linger.ms": 20, "enable.idempotence": True})
    sender = OutputSender(producer)
    started = time.perf_counter()
    for event in events:
        sender.send(topic, event.key, event.value)
    producer.flush(120)
    return len(events) / (time.perf_counter() - started)


def end_offsets(config: Mapping[str, str], topic: str) -> int:
    """Records written to `topic` so far (sum of high watermarks; offsets start at 0 here)."""
    consumer = Consumer({**config, "group.id": f"omnid-bench-offsets-{time.monotonic_ns()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def output_timestamps(config: Mapping[str, str], topic: str) -> list[int]:
    return [record.timestamp for record in read_records(config, topic, idle_s=3.0)]


def span_rate(count: int, stamps: Sequence[int]) -> dict[str, Any]:
    """Rate of `count` events processed between the first and last output timestamp."""
    if len(stamps) < 2:
        return {"outputs": len(stamps), "span_s": None, "events_per_s": None}
    span_s = (max(stamps) - min(stamps)) / 1_000
    return {
        "rate_from": "first to last output record timestamp",
        "outputs": len(stamps),
        "span_s": span_s,
        "events_per_s": rate(count, span_s),
    }


def passthrough_baseline(
    config: Mapping[str, str], events: Sequence[EncodedEvent], run_id: str, partitions: int
) -> dict[str, Any]:
    """Consume -> produce with confluent-kafka in this process: the broker and client ceiling."""
    source, sink = f"{run_id}.passthrough-in", f"{run_id}.passthrough-out"
    create_topics(config, (source, sink), partitions)
    try:
        preload_rate = preload(config, source, events)
        consumer = Consumer(
            {
                **config,
                "group.id": f"{run_id}-passthrough",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        producer = Producer({**config, "linger.ms": 5})
        sender = OutputSender(producer)
        consumer.subscribe([source])
        forwarded = 0
        first_at: float | None = None
        deadline = time.monotonic() + 300
        try:
            while forwarded < len(events) and time.monotonic() < deadline:
                batch = consumer.consume(500, timeout=1.0)
                for message in batch:
                    if message.error() is not None:
                        continue
                    first_at = first_at or time.perf_counter()
                    sender.send(sink, message.key(), message.value())
                    forwarded += 1
                producer.poll(0)
                if batch:
                    consumer.commit(asynchronous=True)
            producer.flush(60)
            wall_s = time.perf_counter() - (first_at or time.perf_counter())
        finally:
            consumer.close()
        result = span_rate(len(events), output_timestamps(config, sink))
        result["span_events_per_s"] = result["events_per_s"]
        result["events_per_s"] = rate(forwarded, wall_s)
        result.update(
            rate_from="wall clock, first message consumed to last delivery acknowledged",
            forwarded=forwarded,
            preload_events_per_s=preload_rate,
        )
        return result
    finally:
        delete_topics(config, (source, sink))


def faust_forward_baseline(
    config: Mapping[str, str],
    events: Sequence[EncodedEvent],
    run_id: str,
    partitions: int,
    work_dir: Path,
    timeout_s: float = 300,
) -> dict[str, Any]:
    """A Faust worker subprocess whose only agent forwards: the framework ceiling."""
    source, sink = f"{run_id}.faust-in", f"{run_id}.faust-out"
    app_id = f"{run_id}-faust-forward"
    env = {
        "OMNID_BENCH_FAUST_APP_ID": app_id,
        "OMNID_BENCH_FAUST_SOURCE": source,
        "OMNID_BENCH_FAUST_SINK": sink,
        "OMNID_BENCH_FAUST_PARTITIONS": str(partitions),
        "OMNID_BENCH_FAUST_DATADIR": str(work_dir / "faust-data"),
    }
    command = ["omnid.benchmarks.faust_forward", "worker", "-l", "warn", "--without-web"]
    return subprocess_baseline(
        config, events, (source, sink), partitions, work_dir, command, env, app_id, timeout_s
    )


def quix_count_baseline(
    config: Mapping[str, str],
    events: Sequence[EncodedEvent],
    run_id: str,
    partitions: int,
    work_dir: Path,
    timeout_s: float = 300,
) -> dict[str, Any]:
    """A quix-streams subprocess counting events per key in RocksDB state, exactly-once: what a
    user would build instead (one stateful stage, one changelog)."""
    source, sink = f"{run_id}.quix-in", f"{run_id}.quix-out"
    group = f"{run_id}-quix-count"
    env = {
        "OMNID_BENCH_QUIX_GROUP": group,
        "OMNID_BENCH_QUIX_SOURCE": source,
        "OMNID_BENCH_QUIX_SINK": sink,
        "OMNID_BENCH_QUIX_STATE_DIR": str(work_dir / "quix-state"),
    }
    # quix-streams lives in a virtualenv of its own (see the `peers` extra); the peer module
    # needs only quixstreams and this package's source on its path.
    python = os.environ.get("OMNID_BENCH_PEERS_PYTHON", sys.executable)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess_baseline(
        config, events, (source, sink), partitions, work_dir, ["omnid.benchmarks.quix_count"], env,
        group, timeout_s, python,
    )  # fmt: skip


def subprocess_baseline(
    config: Mapping[str, str],
    events: Sequence[EncodedEvent],
    topics: tuple[str, str],
    partitions: int,
    work_dir: Path,
    module_command: Sequence[str],
    env: Mapping[str, str],
    internal_prefix: str,
    timeout_s: float,
    python: str = sys.executable,
) -> dict[str, Any]:
    """Preloads `events` into the source topic, runs `python -m <module_command>` until the sink
    holds one output per event, and rates the outputs; topics the framework made for itself
    (named with `internal_prefix`) are deleted afterwards."""
    source, sink = topics
    create_topics(config, topics, partitions)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"{module_command[0].rsplit('.', 1)[-1]}.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        preload(config, source, events)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [python, "-m", *module_command],
                env={**os.environ, **env, "OMNID_KAFKA_BOOTSTRAP": config["bootstrap.servers"]},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        peak_rss = 0
        cpu_s = 0.0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                usage = psutil.Process(process.pid)
                peak_rss = max(peak_rss, usage.memory_info().rss)
                cpu_s = sum(usage.cpu_times()[:2])
            if end_offsets(config, sink) >= len(events):
                break
            time.sleep(0.5)
        exit_code = process.poll()
        result = span_rate(len(events), output_timestamps(config, sink))
        result.update(
            peak_rss_bytes=peak_rss, cpu_s_incl_startup=cpu_s, exited_early=exit_code is not None
        )
        if exit_code is not None or result["outputs"] < len(events):
            result["error"] = f"output {result['outputs']} of {len(events)}; see {log_path}"
        return result
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        existing = AdminClient(dict(config)).list_topics(timeout=10).topics
        delete_topics(config, [source, sink, *(t for t in existing if internal_prefix in t)])
