"""Bytes per stored event of profile history, and the time to write a history, for the
candidate encodings: the graph record codec, positional MessagePack arrays (chosen), and those
arrays deflated. `python bench/history_bytes.py [--customers N --events N]`; the histories are
the final ones of a simulated run of the benchmark workload."""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Callable

from omnid.benchmarks.memory import decode
from omnid.benchmarks.workload import WorkloadSpec
from omnid.identity import records
from omnid.identity.history_records import encode_history
from omnid.identity.simulator import Simulator
from omnid.identity.state import EventHistory
from omnid.rules_file import load_rules


def measure(
    histories: list[EventHistory], encode: Callable[[EventHistory], bytes]
) -> dict[str, float]:
    events = sum(len(h.events) for h in histories)
    started = time.perf_counter()
    encoded = [encode(h) for h in histories]
    elapsed = time.perf_counter() - started
    return {
        "bytes_per_event": round(sum(map(len, encoded)) / events, 1),
        "encode_us_per_event": round(elapsed / events * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    events, _ = decode(WorkloadSpec(customers=args.customers, events=args.events))
    result = Simulator(load_rules(), 4, 1, keep_outputs=False).run(events)
    histories = [p.history for p in result.active_profiles().values() if p.history.events]
    sizes = sorted(len(h.events) for h in histories)
    print(
        json.dumps(
            {
                "profiles": len(histories),
                "events_in_histories": sum(sizes),
                "largest_history": sizes[-1],
                "graph_codec": measure(histories, records.encode),
                "positional_arrays": measure(histories, encode_history),
                "positional_arrays_deflated": measure(
                    histories, lambda h: zlib.compress(encode_history(h), 1)
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
