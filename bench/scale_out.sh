#!/usr/bin/env bash
# Scale-out on a bigger machine: `bash bench/scale_out.sh WORKERS PARTITIONS [bench-scale args]`,
# e.g. `bash bench/scale_out.sh 8 24` on a 16-core box. Every topic of the run is created with
# PARTITIONS partitions (24+ lets up to 24 workers share the work); WORKERS worker processes
# join one consumer group. Point OMNID_KAFKA_BOOTSTRAP at a broker on its own machine so the
# broker does not share the workers' cores; without it the local broker is started here.
# Compare events/s per tenth with `bash bench/scale_out.sh 1 PARTITIONS` on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${1:?usage: bench/scale_out.sh WORKERS PARTITIONS [args]}"
partitions="${2:?usage: bench/scale_out.sh WORKERS PARTITIONS [args]}"
shift 2
if [ -z "${OMNID_KAFKA_BOOTSTRAP:-}" ]; then
  bash deploy/kafka/kafka-local.sh up >/dev/null
fi
exec omnid bench-scale --workers "$workers" --partitions "$partitions" "$@"
