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
# The quix-streams peer pins confluent-kafka below 2.13 (omnid's range is newer and pip cannot
# resolve the two together): it runs from a virtualenv of its own.
if [ ! -x .venv-peers/bin/python ]; then
  python3 -m venv .venv-peers
  .venv-peers/bin/pip install -q 'quixstreams>=3.28,<4'
fi
export OMNID_BENCH_PEERS_PYTHON="$PWD/.venv-peers/bin/python"
exec omnid bench --engine all "$@"
