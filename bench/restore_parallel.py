"""How a table's restore time depends on reading its partitions together or one at a time:
writes PARTITIONS x RECORDS changelog records to a fresh compacted topic, then restores them
into empty stores with omnid's ChangelogRestorer, all partitions in one restore (what a worker
does on an assignment) and partition after partition. Prints one JSON line.

    OMNID_KAFKA_BOOTSTRAP=localhost:9092 python bench/restore_parallel.py [--records 20000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from omnid.config import Settings
from omnid.kafka.stages import Table
from omnid.pipeline.outage import BrokerWait
from omnid.pipeline.restore import ChangelogRestorer
from omnid.pipeline.state_store import TableStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--records", type=int, default=20_000, help="per partition")
    parser.add_argument("--value-bytes", type=int, default=300)
    args = parser.parse_args()
    config = Settings().kafka_client_config()
    topic = f"bench-restore-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, args.partitions, config={"cleanup.policy": "compact"})])[
        topic
    ].result(30)
    try:
        producer = Producer({**config, "linger.ms": 20, "enable.idempotence": True})
        value = b"x" * args.value_bytes
        for partition in range(args.partitions):
            for index in range(args.records):
                key = f"key-{partition}-{index}".encode()
                while True:
                    try:
                        producer.produce(topic, value, key, partition)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain it
                        producer.poll(0.1)
        producer.flush(120)
        together = _restore(config, topic, [list(range(args.partitions))])
        one_by_one = _restore(config, topic, [[p] for p in range(args.partitions)])
    finally:
        admin.delete_topics([topic])
    records = args.partitions * args.records
    print(
        json.dumps(
            {
                "partitions": args.partitions,
                "records": records,
                "together_s": round(together, 2),
                "one_by_one_s": round(one_by_one, 2),
                "together_records_per_s": round(records / together),
                "one_by_one_records_per_s": round(records / one_by_one),
            }
        )
    )
    return 0


def _restore(config: dict[str, str], topic: str, rounds: list[list[int]]) -> float:
    """Seconds to restore every partition into an empty store, one restore per round."""
    with tempfile.TemporaryDirectory() as folder:
        stores = {table: TableStore(Path(folder) / table.value) for table in Table}
        restorer = ChangelogRestorer(
            config,
            f"bench-restore-{uuid.uuid4().hex[:8]}",
            stores,
            dict.fromkeys(Table, topic),
            BrokerWait(threading.Event()),
        )
        try:
            started = time.monotonic()
            for partitions in rounds:
                restorer.restore((Table.IDENTIFIERS, p) for p in partitions)
            return time.monotonic() - started
        finally:
            restorer.close()
            for store in stores.values():
                store.close()


if __name__ == "__main__":
    raise SystemExit(main())
