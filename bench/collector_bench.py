"""Collector throughput: events/s accepted into Kafka (HTTP 200 = acknowledged by the broker).

Starts `omnid collector` as its own process against a real broker, drives it with concurrent
HTTP clients (Segment-style /v1/batch requests, and single /v1/track requests), checks the
topic holds exactly the accepted events, and writes bench/results/collector-<timestamp>.json.

    python bench/collector_bench.py [--events 20000] [--batch-size 100] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from omnid.config import Settings
from omnid.contracts import Channel, events_topic
from omnid.kafka.topics import delete_topics
from omnid.testing.workers import free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WRITE_KEY = "dev-web-key"


def message(run: str, n: int) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"{run}-{n}",
        "userId": f"user-{n % 5000}",
        "anonymousId": f"anon-{n % 7000}",
        "event": "Viewed Product",
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": {"sku": f"sku-{n % 300}", "price": 19.99, "currency": "EUR"},
        "context": {"traits": {"email": f"customer{n % 5000}@example.com"}},
    }


async def drive(
    url: str, bodies: list[tuple[str, dict[str, Any], int]], concurrency: int
) -> tuple[float, int, int]:
    """Post every body with `concurrency` requests in flight; (seconds, accepted, failed)."""
    queue: asyncio.Queue[tuple[str, dict[str, Any], int]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = failed = 0
    headers = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, failed
        while not queue.empty():
            path, body, count = queue.get_nowait()
            async with session.post(url + path, json=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    accepted += count
                else:
                    failed += count

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started, accepted, failed


def topic_size(config: dict[str, str], topic: str, partitions: int) -> int:
    consumer = Consumer({**config, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        total = 0
        for partition in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit("collector exited during start-up")
        if asyncio.run(probe()):
            return
        time.sleep(0.1)
    raise SystemExit("collector did not become healthy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in batch mode")
    parser.add_argument("--single-events", type=int, default=3_000, help="events in single mode")
    parser.add_argument("--batch-size", type=int, default=100, help="messages per /v1/batch")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()

    settings = Settings()
    config = settings.kafka_client_config()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    topic = events_topic(Channel.WEB, prefix)
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, args.partitions, replication_factor=-1)])[topic].result(30)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    collector = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omnid.cli",
            "collector",
            "--port",
            str(port),
            "--topic-prefix",
            prefix,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(url, collector)
        run = uuid.uuid4().hex[:8]
        warmup = [("/v1/batch", {"batch": [message(run + "w", n) for n in range(200)]}, 200)]
        asyncio.run(drive(url, warmup, 1))
        batches = [
            (
                "/v1/batch",
                {
                    "batch": [
                        message(run, n)
                        for n in range(start, min(start + args.batch_size, args.events))
                    ]
                },
                min(args.batch_size, args.events - start),
            )
            for start in range(0, args.events, args.batch_size)
        ]
        batch_seconds, batch_ok, batch_failed = asyncio.run(drive(url, batches, args.concurrency))
        singles = [("/v1/track", message(run + "s", n), 1) for n in range(args.single_events)]
        single_seconds, single_ok, single_failed = asyncio.run(
            drive(url, singles, args.concurrency)
        )
        on_kafka = topic_size(config, topic, args.partitions)
    finally:
        collector.terminate()
        collector.wait(30)
        delete_topics(config, [topic])

    expected_on_kafka = 200 + batch_ok + single_ok
    result = {
        "benchmark": "collector",
        "command": "python bench/collector_bench.py " + " ".join(sys.argv[1:]),
        "at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "kafka_bootstrap": settings.kafka_bootstrap,
        "partitions": args.partitions,
        "concurrency": args.concurrency,
        "batch_mode": {
            "batch_size": args.batch_size,
            "events_accepted": batch_ok,
            "events_failed": batch_failed,
            "seconds": round(batch_seconds, 3),
            "events_per_second": round(batch_ok / batch_seconds, 1),
        },
        "single_mode": {
            "events_accepted": single_ok,
            "events_failed": single_failed,
            "seconds": round(single_seconds, 3),
            "events_per_second": round(single_ok / single_seconds, 1),
        },
        "events_on_kafka": on_kafka,
        "every_accepted_event_on_kafka": on_kafka == expected_on_kafka,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"collector-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return (
        0 if result["every_accepted_event_on_kafka"] and not (batch_failed or single_failed) else 1
    )


if __name__ == "__main__":
    sys.exit(main())
