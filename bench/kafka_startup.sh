#!/usr/bin/env bash
# Measures the local Kafka broker: first run with an empty cache (Maven download + format + start)
# and a cached start-up (artifacts and data present), each until the broker answers a metadata
# request. Uses its own folder and port, so the shared broker on :9092 is left alone.
# Writes bench/results/kafka_startup.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_LOCAL_HOME="${KAFKA_LOCAL_HOME:-$(mktemp -d /tmp/omnid-kafka-bench.XXXXXX)}"
export KAFKA_LOCAL_PORT="${BENCH_KAFKA_PORT:-19092}"
launcher=deploy/kafka/kafka-local.sh
trap 'bash "$launcher" down >/dev/null 2>&1 || true; rm -rf "$KAFKA_LOCAL_HOME"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

rm -rf "${KAFKA_LOCAL_HOME:?}"/*
start=$(now)
bash "$launcher" up >/dev/null
first_run=$(elapsed "$start" "$(now)")
bash "$launcher" down >/dev/null

start=$(now)
bash "$launcher" up >/dev/null
cached_start=$(elapsed "$start" "$(now)")
bash "$launcher" down >/dev/null

mkdir -p bench/results
{
  echo "# bash bench/kafka_startup.sh  ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "first run, empty cache (Maven download + format + start): ${first_run} s"
  echo "start-up, cached artifacts and data:                       ${cached_start} s"
} | tee bench/results/kafka_startup.txt
