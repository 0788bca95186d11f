"""The worker's record handling without a broker: replays a workload through `StageProcessor`
as the runtime does when it owns every partition (batches, commands handed on in the batch,
each batch's ProfileUpdates and state writes), with in-memory tables and no producer.

Prints the processor's CPU per event and a digest of everything it would produce and store, so
a change to the hot path can be timed and checked byte for byte against the code before it
(run both with the same `PYTHONHASHSEED`: set orders differ between processes).

`PYTHONHASHSEED=0 python bench/hot_path.py [--events 20000 --customers 4000 --batch 500]`;
`--profile` runs it under cProfile. The workload is encoded once and kept in the system's
temporary directory. Measures the processor only: Kafka clients, RocksDB and the garbage
collector's settings of `omnid worker` are not in it.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

import msgspec

from omnid.benchmarks.feed import EncodedEvent, encode_events
from omnid.benchmarks.workload import WorkloadSpec, labelled_events
from omnid.contracts import AvroCodec
from omnid.identity.commands import Stage
from omnid.kafka.stages import Table
from omnid.pipeline.partitioning import partition_for
from omnid.pipeline.processor import Incoming, LocalCommand, Outgoing, StageProcessor
from omnid.pipeline.topic_names import PipelineTopics
from omnid.rules_file import load_rules

PREFIX = "hot-path"
PARTITIONS = 6


def workload(events: int, customers: int) -> list[EncodedEvent]:
    path = Path(tempfile.gettempdir()) / f"omnid-hot-path-{events}-{customers}.msgpack"
    if not path.exists():
        spec = WorkloadSpec(customers=customers, events=events, seed=7)
        encoded = encode_events(
            AvroCodec.from_settings(), (e.record for e in labelled_events(spec))
        )
        rows = [(e.event_id, e.channel, e.key, e.value) for e in encoded]
        path.write_bytes(msgspec.msgpack.encode(rows))
    return [EncodedEvent(*row) for row in msgspec.msgpack.decode(path.read_bytes())]


class Replay:
    """The runtime's loop around the processor, every command local."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.processor = StageProcessor(
            load_rules(), AvroCodec.from_settings(), PipelineTopics.under(PREFIX)
        )
        self.processor.local_router = self._partition
        self.tables: dict[Table, dict[str, bytes]] = {table: {} for table in Table}
        self.partitions: dict[tuple[Stage, str], int] = {}
        self.digest = hashlib.sha256()
        self.counts: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()  # local commands by kind (ingest's Resolve too)

    def _partition(self, stage: Stage, key: str) -> int:
        partition = self.partitions.get((stage, key))
        if partition is None:
            partition = self.partitions[(stage, key)] = partition_for(key, PARTITIONS)
        return partition

    def _read(self, table: Table, key: str) -> bytes | None:
        return self.tables[table].get(key)

    def _sent(self, output: Outgoing) -> None:
        self.counts[output.topic.removeprefix(PREFIX + ".")] += 1
        for part in (output.topic.encode(), output.key or b"", output.value or b""):
            self.digest.update(part)
        for name, value in output.headers or ():
            self.digest.update(name.encode() + value)

    def run(self, events: list[EncodedEvent]) -> None:
        processor, queue = self.processor, deque[LocalCommand]()
        for start in range(0, len(events), self.batch):
            for offset, event in enumerate(events[start : start + self.batch], start):
                record = Incoming(event.topic(PREFIX), 0, offset, event.key, event.value)
                outputs = processor.process(record, self._read)
                while True:
                    for output in outputs:
                        if isinstance(output, LocalCommand):
                            queue.append(output)
                            self.counts["local commands"] += 1
                            self.kinds[type(output.command).__name__] += 1
                        else:
                            self._sent(output)
                    if not queue:
                        break
                    local = queue.popleft()
                    outputs = processor.handle(
                        local.table, local.partition, local.command, self._read
                    )
            for update in processor.take_profile_updates():
                self._sent(update)
            for write in processor.take_state_writes():
                self.counts["state writes"] += 1
                self.digest.update(write.key.encode() + (write.value or b"-"))
                if write.value is None:
                    self.tables[write.table].pop(write.key, None)
                else:
                    self.tables[write.table][write.key] = write.value
            processor.tally.reset()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=4_000)
    parser.add_argument(
        "--batch", type=int, default=500, help="records per batch (the worker's default)"
    )
    parser.add_argument("--profile", action="store_true", help="run under cProfile, print the top")
    args = parser.parse_args()
    events = workload(args.events, args.customers)
    replay = Replay(args.batch)
    started = time.process_time()
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(replay.run, events)
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    else:
        replay.run(events)
    seconds = time.process_time() - started
    per_event = seconds / len(events) * 1e6
    print(f"{len(events):,} events: {seconds:.2f} s CPU, {per_event:.0f} us per event")
    print("produced and stored:", dict(replay.counts))
    kinds = ", ".join(f"{k} {n / len(events):.3f}" for k, n in replay.kinds.most_common())
    print("local commands per event by kind:", kinds)
    print("digest:", replay.digest.hexdigest())


if __name__ == "__main__":
    main()
