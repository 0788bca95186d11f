"""Bytes and time per internal record: the stored states and sent commands of a simulated graph,
written and read by the record codec, next to the same records as version 0 (tagged JSON) read
back by the same codec. `python bench/record_codec.py [--customers N --events N]`."""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

from omnid.benchmarks.memory import decode
from omnid.benchmarks.workload import WorkloadSpec
from omnid.identity import records
from omnid.identity import simulator as simulator_module
from omnid.identity.rules import IdentityRules
from omnid.rules_file import load_rules


def sample(spec: WorkloadSpec) -> tuple[dict[str, Any], list[Any]]:
    """The final states of a run, and every command it delivered."""
    events, _ = decode(spec)
    sent: list[Any] = []
    handle_identifier, handle_profile = (
        simulator_module.handle_identifier,
        simulator_module.handle_profile,
    )

    def recording(handler: Any) -> Any:
        def handle(rules: IdentityRules, state: Any, command: Any) -> Any:
            sent.append(command)
            return handler(rules, state, command)

        return handle

    simulator_module.handle_identifier = recording(handle_identifier)  # type: ignore[assignment]
    simulator_module.handle_profile = recording(handle_profile)  # type: ignore[assignment]
    try:
        result = simulator_module.Simulator(load_rules(), 8, 1).run(events)
    finally:
        simulator_module.handle_identifier = handle_identifier  # type: ignore[assignment]
        simulator_module.handle_profile = handle_profile  # type: ignore[assignment]
    return {**result.identifiers, **result.profiles}, sent


def measure(objects: list[Any]) -> dict[str, dict[str, float]]:
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for obj in objects:
        by_kind[type(obj).__name__].append(obj)
    out = {}
    for kind, items in sorted(by_kind.items()):
        started = time.perf_counter()
        encoded = [records.encode(obj) for obj in items]
        encoded_at = time.perf_counter()
        for payload in encoded:
            records.decode(payload)
        decoded_at = time.perf_counter()
        out[kind] = {
            "records": len(items),
            "mean_bytes": sum(map(len, encoded)) / len(items),
            "encode_us": (encoded_at - started) / len(items) * 1e6,
            "decode_us": (decoded_at - encoded_at) / len(items) * 1e6,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=12_000)
    args = parser.parse_args()
    states, commands = sample(WorkloadSpec(customers=args.customers, events=args.events))
    result = {
        "states": measure(list(states.values())),
        "commands": measure(commands),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
