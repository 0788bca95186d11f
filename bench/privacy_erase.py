"""Time from an erase request to its `completed` receipt, and what a suppression marker costs.

Two worker processes (exactly-once) on an isolated copy of the topology hold N customers, each
merged from two profiles (web: email + user id, then till: phone + loyalty card, then a CRM
event with email + phone). Erase requests go through the HTTP API one after another, `--gap`
seconds apart, alternating between the workers; the latency of each is from the request's
`requested_at` (set by the API) to a read_committed consumer reading its `completed` receipt
(one clock: this machine). Marker bytes: key and value as stored in RocksDB.

    python bench/privacy_erase.py [--customers 100] [--gap 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from omnid.api_auth import bearer_header
from omnid.config import PROJECT_ROOT, Settings
from omnid.contracts import AvroCodec, new_channel_event
from omnid.identity import records
from omnid.identity.privacy import marker_key
from omnid.identity.requests import SuppressionMarker
from omnid.kafka.topics import apply_topics, delete_topics, load_topology
from omnid.testing.topic_io import publish_events
from omnid.testing.workers import running_pipeline

RESULTS = PROJECT_ROOT / "bench" / "results" / "privacy_erase.json"
BASE = 1_790_000_000_000


def customer_events(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per customer two unlinked events, then the event that merges their profiles."""
    first, linking = [], []
    for i in range(n):
        email, phone = f"erase.{i}@inbox.example", f"+4479111{i:05d}"
        at = BASE + i
        first.append(
            new_channel_event(
                event_id=f"w-{i}",
                channel="web",
                source="web-shop",
                event_type="identify",
                identifiers=[("email", email), ("user_id", f"eu-{i}")],
                occurred_at=at,
                received_at=at,
                traits={"name": f"Customer {i}"},
            )
        )
        first.append(
            new_channel_event(
                event_id=f"p-{i}",
                channel="pos",
                source="till",
                event_type="purchase",
                identifiers=[("phone", phone), ("loyalty_id", f"EL-{i}")],
                occurred_at=at + 1,
                received_at=at + 1,
                purchase={"order_id": f"o-{i}", "amount": 10, "currency": "GBP"},
            )
        )
        linking.append(
            new_channel_event(
                event_id=f"c-{i}",
                channel="crm",
                source="crm",
                event_type="identify",
                identifiers=[("email", email), ("phone", phone)],
                occurred_at=at + 2,
                received_at=at + 2,
            )
        )
    return first, linking


class ReceiptWatcher(threading.Thread):
    """Notes when each completed receipt becomes readable (read_committed: after the worker's
    transaction committed), by this machine's clock."""

    def __init__(self, config: dict[str, str], topic: str) -> None:
        super().__init__(daemon=True)
        self.codec = AvroCodec.from_settings()
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.consumer = Consumer(
            {
                **config,
                "group.id": f"bench-receipts-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in partitions])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for message in self.consumer.consume(500, timeout=0.1):
                    arrived = time.time() * 1000
                    if message.error() or message.value() is None:
                        continue
                    record = self.codec.decode(message.value()).record
                    if record["status"] == "completed":
                        self.seen.setdefault(record["request_id"], arrived - _millis(record))
        finally:
            self.consumer.close()


def _millis(record: dict[str, Any]) -> float:
    at = record["requested_at"]
    return at if isinstance(at, int) else at.timestamp() * 1000


def erase(api: str, token: str, email: str) -> str:
    body = json.dumps({"kind": "erase", "subject": {"type": "email", "value": email}}).encode()
    request = urllib.request.Request(
        f"{api}/v1/privacy/requests",
        data=body,
        headers={**bearer_header(token), "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["request_id"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between requests")
    args = parser.parse_args()
    config = Settings().kafka_client_config()
    prefix = f"bench-privacy-{uuid.uuid4().hex[:8]}"
    spec = load_topology(Settings().topics_file)
    apply_topics(config, spec, prefix)
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            running_pipeline(config, prefix, Path(folder), workers=2) as pipeline,
        ):
            pipeline.wait_until_assigned(6)
            first, linking = customer_events(args.customers)
            publish_events(config, pipeline.topics, first)
            pipeline.wait_drained()
            publish_events(config, pipeline.topics, linking)
            pipeline.wait_drained()
            watcher = ReceiptWatcher(config, pipeline.topics.privacy_receipts)
            watcher.start()
            ids = []
            for i in range(args.customers):
                api = pipeline.workers[i % 2].url
                ids.append(erase(api, pipeline.api_token, f"erase.{i}@inbox.example"))
                time.sleep(args.gap)
            deadline = time.monotonic() + 120
            while len(watcher.seen) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.2)
            watcher.stop.set()
            watcher.join(10)
            latencies = dict(watcher.seen)
    finally:
        delete_topics(config, spec.names(prefix).values())
    values = [latencies[i] for i in ids if i in latencies]
    key = marker_key(b"secret", "email:erase.0@inbox.example")
    value = records.encode(SuppressionMarker(uuid.uuid4().hex))
    result = {
        "command": f"python bench/privacy_erase.py --customers {args.customers} --gap {args.gap}",
        "machine": f"{platform.machine()}, {platform.python_version()}; 2 shared cores, loaded",
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        "requests": len(ids),
        "completed": len(values),
        "erase_to_completed_ms": {
            "median": round(statistics.median(values), 1),
            "p99": round(percentile(values, 0.99), 1),
            "max": round(max(values), 1),
        },
        "marker_bytes": {"key": len(key), "value": len(value), "total": len(key) + len(value)},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
