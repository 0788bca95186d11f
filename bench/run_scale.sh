#!/usr/bin/env bash
# `make bench-scale`: omnid on a graph of realistic size (1,000,000 events over 200,000
# customers, one worker; about 11½ minutes on a quiet 2-core machine once the workload is cached,
# plus ~3 minutes the first time to generate it). `make bench-scale-out` (OMNID_SCALE_OUT=only):
# scale-out on a smaller graph instead, 1 worker joined by a second at the third tenth
# (rebalance cost), and 3 workers (correctness: the final profiles count every event once); on
# a 2-core machine more workers cannot add CPU. OMNID_SCALE_OUT=1 runs both; OMNID_SCALE_OUT_EVENTS
# sets the scale-out size (default 100,000). Starts the local broker unless OMNID_KAFKA_BOOTSTRAP
# names one. Writes bench/results/scale-<timestamp>.json and .png per run. Extra arguments go to
# every run (e.g. `--events 200000`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OMNID_KAFKA_BOOTSTRAP:-}" ]; then
  bash deploy/kafka/kafka-local.sh up >/dev/null
fi
scale_out="${OMNID_SCALE_OUT:-0}"
if [ "$scale_out" != only ]; then
  omnid bench-scale --workers 1 "$@"
fi
if [ "$scale_out" != 0 ]; then
  out_events="${OMNID_SCALE_OUT_EVENTS:-100000}"
  out_customers=$((out_events / 5))
  omnid bench-scale --workers 1 --add-worker-at-tenth 3 \
    --events "$out_events" --customers "$out_customers" "$@"
  omnid bench-scale --workers 3 --events "$out_events" --customers "$out_customers" "$@"
fi
