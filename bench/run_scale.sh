#!/usr/bin/env bash
# `make bench-scale`: omnid on a graph of realistic size (1,000,000 events over 200,000
# customers, one worker), then scale-out on a smaller graph: 1 worker joined by a second at the
# third tenth (rebalance cost), and 3 workers (correctness: the final profiles count every event
# their updates showed). On a 2-core machine more workers cannot add CPU. Starts the local broker
# unless OMNID_KAFKA_BOOTSTRAP names one. Writes bench/results/scale-<timestamp>.json and .png per
# run. Extra arguments go to every run (e.g. `--events 200000`); OMNID_SCALE_OUT=0 skips the
# scale-out runs; OMNID_SCALE_OUT_EVENTS sets their size (default 100,000: with the 1M-event run
# the whole target stays near 10 minutes at ~2,000 events/s).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OMNID_KAFKA_BOOTSTRAP:-}" ]; then
  bash deploy/kafka/kafka-local.sh up >/dev/null
fi
omnid bench-scale --workers 1 "$@"
if [ "${OMNID_SCALE_OUT:-1}" != 0 ]; then
  out_events="${OMNID_SCALE_OUT_EVENTS:-100000}"
  out_customers=$((out_events / 5))
  omnid bench-scale --workers 1 --add-worker-at-tenth 3 \
    --events "$out_events" --customers "$out_customers" "$@"
  omnid bench-scale --workers 3 --events "$out_events" --customers "$out_customers" "$@"
fi
