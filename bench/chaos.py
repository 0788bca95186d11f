"""`make chaos`: three workers on a private broker (port 9392, its own KAFKA_LOCAL_HOME), Segment
messages at a steady rate through the HTTP collector, worker SIGKILLs (some restarted on an
empty disk), a broker SIGKILL and restart, a worker added and one removed; writes
bench/results/chaos-<timestamp>.json (the faults, lost / double-counted events, wrong profiles,
lookup availability, time to recover after each fault) and exits 1 unless all three are 0.

    python bench/chaos.py [--customers 100] [--rate 20] [--seed 14] [--short] [--port 9392]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from omnid.config import PROJECT_ROOT
from omnid.testing.broker import LocalBroker
from omnid.testing.chaos import FULL_SCHEDULE, SHORT_SCHEDULE, ChaosSpec, run_chaos, write_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--port", type=int, default=9392, help="the private broker's port")
    parser.add_argument("--short", action="store_true", help="broker restart, kill, join only")
    parser.add_argument("--keep", type=Path, help="keep the broker and worker logs here")
    args = parser.parse_args()
    spec = ChaosSpec(
        schedule=SHORT_SCHEDULE if args.short else FULL_SCHEDULE,
        customers=args.customers,
        events_per_s=args.rate,
        seed=args.seed,
    )
    load_before = os.getloadavg()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="omnid-chaos-") as tmp:
        home = args.keep or Path(tmp)
        broker = LocalBroker(home / "kafka", args.port)
        broker.start()
        try:
            result = run_chaos(broker, home / "run", spec)
        finally:
            broker.stop()
    report = {
        "run": {
            "schedule": [fault.value for fault in spec.schedule],
            "customers": spec.customers,
            "events_per_s": spec.events_per_s,
            "seed": spec.seed,
            "workers_at_start": 3,
            "through": "HTTP collector (/v1/batch, retried on 503 like an SDK)",
            "wall_s": round(time.monotonic() - began, 1),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_before_after": [
                round(load_before[0], 2),
                round(os.getloadavg()[0], 2),
            ],
        },
        **result.report,
    }
    path = write_report(report, PROJECT_ROOT / "bench" / "results")
    print(path.read_text())
    print(f"chaos: written {path}")
    return 0 if result.exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
