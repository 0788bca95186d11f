"""RocksDB bytes per identifier of a graph, without Kafka: the final states of a simulated run
of the benchmark workload, stored as a worker stores them (identifier states, profiles without
their history, histories apart; `pipeline.state_store` options), compacted, SST bytes divided
by the identifiers held. The same density `make bench-scale` reports after its run, for
comparing encodings quickly. `python bench/state_bytes.py [--customers N --events N]`."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from omnid.benchmarks.memory import decode
from omnid.benchmarks.workload import WorkloadSpec
from omnid.identity import records
from omnid.identity.history_records import encode_history
from omnid.identity.simulator import Simulator
from omnid.identity.state import EventHistory, ProfileState
from omnid.kafka.stages import Table
from omnid.pipeline.state_store import TableStore
from omnid.rules_file import load_rules


def _profile_record(state: ProfileState) -> bytes:
    history, state.history = state.history, EventHistory()
    try:
        return records.encode(state)
    finally:
        state.history = history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    events, _ = decode(WorkloadSpec(customers=args.customers, events=args.events))
    result = Simulator(load_rules(), 4, 1, keep_outputs=False).run(events)
    tables: dict[Table, list[tuple[str, bytes]]] = {
        Table.IDENTIFIERS: [(k, records.encode(s, k)) for k, s in result.identifiers.items()],
        Table.PROFILES: [(k, _profile_record(p)) for k, p in result.profiles.items()],
        Table.HISTORY: [
            (k, encode_history(p.history))
            for k, p in result.profiles.items()
            if p.history.events or p.history.residue is not None
        ],
    }
    out: dict[str, object] = {"events": len(events), "identifiers": len(result.identifiers)}
    sst_total = 0
    with tempfile.TemporaryDirectory() as scratch:
        for table, rows in tables.items():
            store = TableStore(Path(scratch) / table.value)
            try:
                store.write(rows, {})
                store.compact()
            finally:
                store.close()
            sst = sum(f.stat().st_size for f in (Path(scratch) / table.value).glob("*.sst"))
            sst_total += sst
            out[table.value] = {
                "records": len(rows),
                "value_bytes_per_record": round(sum(len(v) for _, v in rows) / max(len(rows), 1)),
                "sst_bytes": sst,
            }
    out["bytes_per_identifier"] = round(sst_total / len(result.identifiers), 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
