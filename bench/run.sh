#!/usr/bin/env bash
# `make bench`: the whole benchmark in one run (pipeline on the real broker, the pass-through
# and Faust forward-only ceilings, batch components, quality vs ground truth). Starts the local
# broker unless OMNID_KAFKA_BOOTSTRAP names one. Writes bench/results/<timestamp>.json and .png.
# Extra arguments go to `omnid bench`, e.g. `bash bench/run.sh --customers 5000`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${OMNID_KAFKA_BOOTSTRAP:-}" ]; then
  bash deploy/kafka/kafka-local.sh up >/dev/null
fi
exec omnid bench --engine all "$@"
