"""The framework-ceiling baseline: a Faust app whose one agent forwards every message unchanged.

Run as a worker subprocess (`python -m omnid.benchmarks.faust_forward worker`); topics, app id and
data dir come from OMNID_BENCH_FAUST_* environment variables so each run is isolated.
"""

from __future__ import annotations

import os
import sys

import faust

APP_ID = os.environ.get("OMNID_BENCH_FAUST_APP_ID", "omnid-bench-forward")
SOURCE_TOPIC = os.environ.get("OMNID_BENCH_FAUST_SOURCE", "omnid-bench-forward-in")
SINK_TOPIC = os.environ.get("OMNID_BENCH_FAUST_SINK", "omnid-bench-forward-out")
BROKER = os.environ.get("OMNID_KAFKA_BOOTSTRAP", "localhost:9092")
PARTITIONS = int(os.environ.get("OMNID_BENCH_FAUST_PARTITIONS", "1"))

app = faust.App(
    APP_ID,
    broker=f"kafka://{BROKER}",
    datadir=os.environ.get("OMNID_BENCH_FAUST_DATADIR", f"/tmp/{APP_ID}"),
    # Forwarding needs no tables and no web server; the in-memory store keeps rocksdict out.
    store="memory://",
    web_enabled=False,
    topic_partitions=PARTITIONS,
    topic_allow_declare=False,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(
    SOURCE_TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
)
sink = app.topic(
    SINK_TOPIC, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
)


@app.agent(source)
async def forward(stream: faust.StreamT[bytes]) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value)


if __name__ == "__main__":
    sys.argv[0] = "omnid-bench-forward"
    app.main()
