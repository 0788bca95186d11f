"""CPU time of the collector's per-request work without HTTP or Kafka: parse a 100-message
/v1/batch body, map every message to a ChannelEvent and encode it, as collector.py does.

Measured with process time (not wall time), so a loaded machine disturbs it far less than the
end-to-end bench/collector_bench.py. Run it against two checkouts to compare them:

    python bench/collector_validation_cost.py                       # this checkout
    PYTHONPATH=/path/to/other/src python bench/collector_validation_cost.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import omnid
from collector_bench import message
from omnid.adapters.segment import WriteKeyTarget, batch_messages, channel_event_from_segment
from omnid.contracts import AvroCodec, Channel
from omnid.contracts.channel_event import encode_channel_event

try:  # the strict, depth-bounded parser; checkouts before it parsed with json.loads
    from omnid.adapters.json_body import parse_json_body as parse
except ImportError:
    parse = json.loads  # type: ignore[assignment]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    codec = AvroCodec.from_settings()
    target = WriteKeyTarget(Channel.WEB, "bench")
    bodies = [
        json.dumps({"batch": [message(f"r{b}", n) for n in range(args.batch_size)]}).encode()
        for b in range(args.batches)
    ]
    started = time.process_time()
    for raw in bodies:
        for item in batch_messages(parse(raw)):
            encode_channel_event(codec, channel_event_from_segment(item, target, 1))
    seconds = time.process_time() - started
    events = args.batches * args.batch_size
    print(json.dumps({
        "omnid": str(Path(omnid.__file__).parent),
        "events": events,
        "cpu_seconds": round(seconds, 3),
        "cpu_us_per_event": round(seconds / events * 1e6, 2),
        "events_per_cpu_second": round(events / seconds),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
