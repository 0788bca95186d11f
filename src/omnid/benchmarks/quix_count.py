"""The peer a user would build instead: a quix-streams app that counts events per key in its
RocksDB state, with exactly-once processing, and publishes each new count.

Run as a subprocess (`python -m omnid.benchmarks.quix_count`); topics, group and state dir come from
OMNID_BENCH_QUIX_* environment variables so each run is isolated.
"""

from __future__ import annotations

import os
from typing import Any

from quixstreams import Application, State


def count(value: bytes, state: State) -> dict[str, Any]:
    seen = int(state.get("count", 0)) + 1
    state.set("count", seen)
    return {"count": seen}


def main() -> None:
    app = Application(
        broker_address=os.environ.get("OMNID_KAFKA_BOOTSTRAP", "localhost:9092"),
        consumer_group=os.environ["OMNID_BENCH_QUIX_GROUP"],
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=os.environ["OMNID_BENCH_QUIX_STATE_DIR"],
        loglevel="WARNING",
    )
    source = app.topic(os.environ["OMNID_BENCH_QUIX_SOURCE"], value_deserializer="bytes")
    sink = app.topic(os.environ["OMNID_BENCH_QUIX_SINK"], value_serializer="json")
    app.dataframe(source).apply(count, stateful=True).to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
